#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <sys/types.h>

namespace recmesh {

// Whole-file read; throws Error(kNotFound) when the file cannot be opened.
std::string read_file(const std::filesystem::path& path);

// Writes through a temporary file in the same directory, fsyncs it and renames it over `path`,
// so readers see the old or the new content, never a mix. `mode` is applied before any byte is
// written, so a key never exists with looser permissions.
void write_file_atomic(const std::filesystem::path& path, std::string_view content, mode_t mode);

// Creates `dir` and missing parents with `mode`; existing directories are left as they are.
void create_directories(const std::filesystem::path& dir, mode_t mode);

// Flushes the filesystem holding `path` (one syncfs instead of one fsync per file).
void sync_filesystem(const std::filesystem::path& path);

}  // namespace recmesh
