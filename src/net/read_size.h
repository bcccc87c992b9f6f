#pragma once
// How much to read next: small while a connection carries small messages, so
// ten thousand idle or chatty connections hold little memory; doubling while
// reads come back full, so a bulk transfer gets large reads.

#include <cstddef>

namespace porthole::net {

class read_size {
 public:
  static constexpr std::size_t min = 4 * 1024;
  static constexpr std::size_t max = 64 * 1024;

  std::size_t next() const { return next_; }

  /// Records that a read of next() bytes returned n.
  void update(std::size_t n) {
    if (n >= next_ && next_ < max) {
      next_ *= 2;
    } else if (n < next_ / 4 && next_ > min) {
      next_ /= 2;
    }
  }

 private:
  std::size_t next_ = min;
};

}  // namespace porthole::net
