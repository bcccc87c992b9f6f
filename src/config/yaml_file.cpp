#include "config/yaml_file.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>

namespace porthole::config {

namespace {

namespace fs = std::filesystem;

// A configuration file is a few hundred bytes; anything this big is the wrong file.
constexpr std::uintmax_t max_file_size = 1024 * 1024;

std::string escape_controls(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte != 0x7f) {
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else {
      static constexpr char digits[] = "0123456789abcdef";
      out += "\\x";
      out += digits[byte >> 4];
      out += digits[byte & 0xf];
    }
  }
  return out;
}

// Edits (insert, delete, substitute, swap two neighbours) turning a into b.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) {
    d[i][0] = i;
  }
  for (std::size_t j = 0; j <= b.size(); ++j) {
    d[0][j] = j;
  }
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

// Takes the events of a YAML document and keeps only where its first node is.
class first_node_mark final : public YAML::EventHandler {
 public:
  std::optional<YAML::Mark> mark;

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& at, YAML::anchor_t) override { keep(at); }
  void OnAlias(const YAML::Mark& at, YAML::anchor_t) override { keep(at); }
  void OnScalar(const YAML::Mark& at, const std::string&, YAML::anchor_t,
                const std::string&) override {
    keep(at);
  }
  void OnSequenceStart(const YAML::Mark& at, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    keep(at);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& at, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    keep(at);
  }
  void OnMapEnd() override {}

 private:
  void keep(const YAML::Mark& at) {
    if (!mark) {
      mark = at;
    }
  }
};

// Where a second YAML document in `yaml` starts, if there is one. Not
// YAML::LoadAll(): yaml-cpp 0.7's loops forever, allocating, on some invalid
// input such as ",:" (its parser returns an empty document without moving on;
// yaml-cpp PR #1319, fixed after 0.8). One document more than the first is
// all that needs reading. Throws YAML::Exception on a syntax error.
std::optional<YAML::Mark> second_document_at(const std::string& yaml) {
  std::istringstream in(yaml);
  YAML::Parser parser(in);
  first_node_mark first;
  if (!parser.HandleNextDocument(first)) {
    return std::nullopt;
  }
  first_node_mark second;
  if (!parser.HandleNextDocument(second)) {
    return std::nullopt;
  }
  return second.mark.value_or(YAML::Mark::null_mark());
}

}  // namespace

config_error::config_error(std::string_view what) : runtime_error(escape_controls(what)) {}

std::string place(const fs::path& file, const YAML::Mark& at) {
  std::string out = file.string();
  if (!at.is_null()) {
    out += ":" + std::to_string(at.line + 1) + ":" + std::to_string(at.column + 1);
  }
  return out;
}

void fail_at(const fs::path& file, const YAML::Mark& at, const std::string& what) {
  throw config_error(place(file, at) + ": " + what);
}

std::string read_text(const fs::path& file) {
  const std::string name = file.string();
  std::error_code ec;
  if (fs::is_directory(file, ec)) {
    throw config_error(name + ": is a directory, not a configuration file");
  }
  if (const auto size = fs::file_size(file, ec); !ec && size > max_file_size) {
    throw config_error(name + ": " + std::to_string(size) +
                       " bytes is too big for a configuration file (the limit is 1 MiB)");
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    throw config_error(name + ": cannot open: " + std::strerror(errno));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    throw config_error(name + ": cannot read: " + std::strerror(errno));
  }
  return text.str();
}

YAML::Node load_one_document(const std::string& yaml, const fs::path& file) {
  YAML::Node root;
  std::optional<YAML::Mark> second_document;
  try {
    root = YAML::Load(yaml);
    second_document = second_document_at(yaml);
  } catch (const YAML::ParserException& e) {
    fail_at(file, e.mark, "YAML syntax error: " + e.msg);
  } catch (const YAML::Exception& e) {
    fail_at(file, e.mark, "cannot read YAML: " + e.msg);
  }
  if (second_document) {
    fail_at(file, *second_document, "expected one YAML document, found a second one here");
  }
  return root;
}

std::string did_you_mean(std::string_view word, const std::vector<std::string_view>& known) {
  std::string_view best;
  std::size_t best_distance = std::numeric_limits<std::size_t>::max();
  for (const auto candidate : known) {
    const std::size_t distance = edit_distance(word, candidate);
    if (distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  if (best_distance <= 2 && best_distance * 2 < best.size()) {
    return "; did you mean '" + std::string(best) + "'?";
  }
  return {};
}

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return node.size() == 0 ? "an empty map" : "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar: {
      constexpr std::size_t max_shown = 40;
      std::string text = node.Scalar();
      if (text.size() > max_shown) {
        std::size_t cut = max_shown;
        while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) {
          --cut;  // not inside a UTF-8 sequence
        }
        text = text.substr(0, cut) + "...";
      }
      return "'" + text + "'";
    }
    default:
      return "nothing";
  }
}

}  // namespace porthole::config
