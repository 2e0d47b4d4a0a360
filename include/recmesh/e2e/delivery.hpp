#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "recmesh/e2e/failure.hpp"

namespace recmesh::e2e {

// Which sequence numbers a receiver has accepted: the highest one and a sliding window of
// `size` numbers below it (docs/protocol/e2e.md §5.1 and §6). A session keeps one for its replay
// checks; the EMS engine keeps one per member, durably, over the gateway's message IDs, so that
// a message re-sealed in a later session is recognised as delivered.
class SequenceWindow {
 public:
  static constexpr std::uint32_t kMinSize = 64;
  static constexpr std::uint32_t kMaxSize = 4096;

  // `size` is a multiple of 64 in [kMinSize, kMaxSize] (E2eSettings::validate checks it).
  explicit SequenceWindow(std::uint32_t size);

  // kReplayed for a number already accepted, kOutsideWindow for one below the window; nothing
  // for a number that may be accepted.
  std::optional<Failure> check(std::uint64_t sequence) const;
  void accept(std::uint64_t sequence);
  // True when `sequence` is known as accepted, or lies below the window (taken as delivered).
  bool delivered(std::uint64_t sequence) const { return check(sequence).has_value(); }

  std::uint64_t highest() const { return highest_; }
  std::uint32_t size() const { return size_; }
  // size/8 bytes; bit i (byte i/8, bit i%8, least significant first) is set when the number
  // highest - i was accepted. All zero while nothing was accepted.
  std::string bitmap() const;
  // The window that bitmap() described; kMalformed for a size or bitmap that does not fit.
  static Checked<SequenceWindow> restore(std::uint64_t highest, std::string_view bitmap);

 private:
  bool test(std::uint64_t s) const { return (bits_[(s % size_) / 64] >> (s % 64)) & 1U; }
  void set(std::uint64_t s) { bits_[(s % size_) / 64] |= std::uint64_t{1} << (s % 64); }
  void clear(std::uint64_t s) { bits_[(s % size_) / 64] &= ~(std::uint64_t{1} << (s % 64)); }

  std::vector<std::uint64_t> bits_;
  std::uint32_t size_;
  std::uint64_t highest_ = 0;  // sequence numbers start at 1
};

// The payload of the sealed message by which the EMS engine confirms to a gateway which of its
// messages are stored (docs/protocol/e2e.md §6.1): "ack", the highest message ID (8 bytes,
// big-endian), the window size in bits (2 bytes) and the window's bitmap.
inline constexpr std::string_view kAckPrefix = "ack";

struct Acknowledgement {
  std::uint64_t highest = 0;
  std::uint32_t window = 0;
  std::string bitmap;  // as SequenceWindow::bitmap()

  // The receiver stored message `id` (or will never take it: it lies below the window).
  bool confirms(std::uint64_t id) const;
};

std::string encode_ack(const SequenceWindow& window);
// Layout checks (kTruncated, kMalformed); never throws.
Checked<Acknowledgement> parse_ack(std::string_view payload);
// True when `payload` is meant as an ack (starts with kAckPrefix), well formed or not.
bool looks_like_ack(std::string_view payload);

}  // namespace recmesh::e2e
