#pragma once
// The web inspector's page: the files of web/inspector/, embedded in the
// binary at build time (cmake/embed.cmake), so it needs nothing at run time.

#include <span>
#include <string_view>

namespace porthole::client {

struct embedded_file {
  std::string_view name;   ///< the file's name in web/inspector/, e.g. "app.js"
  std::string_view bytes;  ///< its content
};

/// Every embedded file, sorted by name.
std::span<const embedded_file> inspector_files();

}  // namespace porthole::client
