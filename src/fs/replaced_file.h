#pragma once
// A file other programs read to learn a running program's state (its
// --ready-file): replaced whole at each write, so a reader never sees half of
// it, and removed when the program ends.

#include <filesystem>
#include <string_view>
#include <system_error>

namespace porthole::fs {

/// PATH, written as PATH.tmp (mode 0644) and renamed over PATH.
class replaced_file {
 public:
  /// Checks that PATH can be written, by creating and removing PATH.tmp, and
  /// removes a PATH an earlier run left. Throws std::runtime_error naming
  /// PATH.tmp and why it cannot be created.
  explicit replaced_file(std::filesystem::path path);
  /// Calls remove().
  ~replaced_file();
  replaced_file(const replaced_file&) = delete;
  replaced_file& operator=(const replaced_file&) = delete;

  /// Makes `text` the file's content; on an error (returned) the file is as it was.
  std::error_code write(std::string_view text);

  /// Removes the file, if it is there (a failure is ignored).
  void remove() noexcept;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::filesystem::path temporary_;
};

}  // namespace porthole::fs
