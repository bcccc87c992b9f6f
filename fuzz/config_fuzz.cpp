// The client's configuration file (~/.porthole.yml), as parse_config() reads
// it after load_config_file() has read at most 1 MiB of it.
//
// Properties: no crash, no exception other than config_error; every error is
// one line naming the file; a file that parses selects each of its tunnels by
// name, and all of them with all_tunnels().

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "check.h"
#include "client/config_file.h"

namespace {

namespace client = porthole::client;

// Outside any real directory, so a relative path resolves to nothing that exists.
const std::string file_name = "/nonexistent/porthole.yml";

void check_error(const client::config_error& e) {
  const std::string_view what = e.what();
  FUZZ_CHECK(what.starts_with(file_name));
  FUZZ_CHECK(what.find('\n') == std::string_view::npos);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  client::config_file file;
  try {
    file = client::parse_config(text, file_name);
  } catch (const client::config_error& e) {
    check_error(e);
    return 0;
  }
  FUZZ_CHECK(file.path == file_name);
  std::vector<std::string> names;
  std::size_t specs = 0;
  for (const client::named_tunnel& t : file.tunnels) {
    FUZZ_CHECK(!t.specs.empty());
    FUZZ_CHECK(file.find(t.name) == &t);
    names.push_back(t.name);
    specs += t.specs.size();
    const auto selected = client::select_tunnels(file, {t.name});
    FUZZ_CHECK(selected == t.specs);
  }
  FUZZ_CHECK(client::select_tunnels(file, names) == client::all_tunnels(file));
  FUZZ_CHECK(client::all_tunnels(file).size() == specs);
  try {
    client::select_tunnels(file, {"no such tunnel \x01"});
    FUZZ_CHECK(file.find("no such tunnel \x01") != nullptr);
  } catch (const client::config_error& e) {
    check_error(e);
  }
  return 0;
}
