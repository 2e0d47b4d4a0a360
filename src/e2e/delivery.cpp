#include "recmesh/e2e/delivery.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "byte_io.hpp"

namespace recmesh::e2e {
namespace {

bool valid_size(std::uint64_t size) {
  return size >= SequenceWindow::kMinSize && size <= SequenceWindow::kMaxSize && size % 64 == 0;
}

bool bit_of(std::string_view bitmap, std::uint64_t i) {
  return ((static_cast<unsigned>(static_cast<std::uint8_t>(bitmap[i / 8])) >> (i % 8)) & 1U) != 0;
}

}  // namespace

SequenceWindow::SequenceWindow(std::uint32_t size)
    : bits_(std::max<std::uint32_t>(size, kMinSize) / 64, 0),
      size_(std::max<std::uint32_t>(size, kMinSize) / 64 * 64) {}

std::optional<Failure> SequenceWindow::check(std::uint64_t sequence) const {
  if (highest_ == 0 || sequence > highest_) {
    return std::nullopt;
  }
  if (highest_ - sequence >= size_) {
    return Failure::kOutsideWindow;
  }
  return test(sequence) ? std::optional(Failure::kReplayed) : std::nullopt;
}

void SequenceWindow::accept(std::uint64_t sequence) {
  if (sequence > highest_) {
    const std::uint64_t delta = sequence - highest_;
    if (delta >= size_) {
      std::fill(bits_.begin(), bits_.end(), 0);
    } else {
      for (std::uint64_t s = highest_ + 1; s < sequence; ++s) {
        clear(s);
      }
    }
    highest_ = sequence;
  }
  set(sequence);
}

std::string SequenceWindow::bitmap() const {
  std::string out(size_ / 8, '\0');
  for (std::uint64_t i = 0; i < size_ && i < highest_; ++i) {
    if (test(highest_ - i)) {
      out[i / 8] = static_cast<char>(static_cast<unsigned>(static_cast<std::uint8_t>(out[i / 8])) |
                                     (1U << (i % 8)));
    }
  }
  return out;
}

Checked<SequenceWindow> SequenceWindow::restore(std::uint64_t highest, std::string_view bitmap) {
  const std::uint64_t size = std::uint64_t{bitmap.size()} * 8;
  if (!valid_size(size)) {
    return reject(Failure::kMalformed, fmt::format("a window of {} bits", size));
  }
  if ((highest == 0) != std::all_of(bitmap.begin(), bitmap.end(), [](char c) { return c == 0; })) {
    return reject(Failure::kMalformed, "the window does not match its highest number");
  }
  if (highest != 0 && !bit_of(bitmap, 0)) {
    return reject(Failure::kMalformed, "the highest number is not marked accepted");
  }
  SequenceWindow window(static_cast<std::uint32_t>(size));
  for (std::uint64_t i = size; i > 0; --i) {
    const std::uint64_t offset = i - 1;
    if (offset < highest && bit_of(bitmap, offset)) {
      window.accept(highest - offset);
    } else if (offset >= highest && bit_of(bitmap, offset)) {
      return reject(Failure::kMalformed, "a bit below sequence number 1");
    }
  }
  return window;
}

bool Acknowledgement::confirms(std::uint64_t id) const {
  if (id == 0 || id > highest) {
    return false;
  }
  const std::uint64_t offset = highest - id;
  return offset >= window || bit_of(bitmap, offset);
}

std::string encode_ack(const SequenceWindow& window) {
  std::string out(kAckPrefix);
  detail::append_be(out, window.highest(), 8);
  detail::append_be(out, window.size(), 2);
  out.append(window.bitmap());
  return out;
}

bool looks_like_ack(std::string_view payload) {
  return payload.starts_with(kAckPrefix);
}

Checked<Acknowledgement> parse_ack(std::string_view payload) {
  detail::ByteReader in(payload);
  const auto prefix = in.take(kAckPrefix.size());
  if (prefix && *prefix != kAckPrefix) {
    return reject(Failure::kMalformed, "not an ack");
  }
  const auto highest = in.integer(8);
  const auto size = in.integer(2);
  if (!prefix || !highest || !size) {
    return reject(Failure::kTruncated, "ack shorter than its header");
  }
  if (!valid_size(*size)) {
    return reject(Failure::kMalformed, fmt::format("ack window of {} bits", *size));
  }
  const auto bitmap = in.take(static_cast<std::size_t>(*size / 8));
  if (!bitmap) {
    return reject(Failure::kTruncated, "ack window runs past the end");
  }
  if (!in.at_end()) {
    return reject(Failure::kMalformed, "trailing bytes after the ack");
  }
  // The same consistency rules as a stored window: the highest number is marked, nothing lies
  // below sequence number 1.
  if (auto window = SequenceWindow::restore(*highest, *bitmap); !window) {
    return window.error();
  }
  return Acknowledgement{*highest, static_cast<std::uint32_t>(*size), std::string(*bitmap)};
}

}  // namespace recmesh::e2e
