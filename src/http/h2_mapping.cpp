#include "http/h2_mapping.h"

#include "http/ascii.h"

namespace porthole::http {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = ascii_lower(c);
  }
  return out;
}

}  // namespace

std::optional<std::string_view> h2_request::find(std::string_view name) const {
  for (const field& f : fields) {
    if (f.name == name) {
      return std::string_view(f.value);
    }
  }
  return std::nullopt;
}

h1_body body_framing(const h2_request& r, bool ends_stream) {
  if (ends_stream) {
    return h1_body::none;
  }
  return r.find("content-length") ? h1_body::content_length : h1_body::chunked;
}

bool is_connection_specific(std::string_view name) {
  return iequals(name, "connection") || iequals(name, "keep-alive") ||
         iequals(name, "proxy-connection") || iequals(name, "transfer-encoding") ||
         iequals(name, "upgrade");
}

std::string h1_request_head(const h2_request& r, h1_body body) {
  std::string head;
  head.reserve(64 + r.path.size() + r.authority.size() + 32 * r.fields.size());
  head += r.method;
  head += ' ';
  head += r.path;
  head += " HTTP/1.1\r\nHost: ";
  if (!r.authority.empty()) {
    head += r.authority;
  } else if (auto host = r.find("host")) {
    head += *host;
  }
  head += "\r\n";
  std::string cookie;
  bool te_trailers = false;
  for (const field& f : r.fields) {
    if (f.name == "host" || is_connection_specific(f.name)) {
      continue;
    }
    if (f.name == "te") {
      te_trailers = te_trailers || iequals(trim_ows(f.value), "trailers");
      continue;
    }
    if (f.name == "cookie") {
      if (!cookie.empty()) {
        cookie += "; ";
      }
      cookie += f.value;
      continue;
    }
    head += f.name;
    head += ": ";
    head += f.value;
    head += "\r\n";
  }
  if (!cookie.empty()) {
    head += "cookie: ";
    head += cookie;
    head += "\r\n";
  }
  if (te_trailers) {
    head += "TE: trailers\r\nConnection: te\r\n";
  }
  if (body == h1_body::chunked) {
    head += "Transfer-Encoding: chunked\r\n";
  }
  head += "\r\n";
  return head;
}

void append_chunk(std::string& out, std::string_view bytes) {
  if (bytes.empty()) {
    return;
  }
  static constexpr char hex[] = "0123456789abcdef";
  char size[16];
  std::size_t n = 0;
  for (std::size_t v = bytes.size(); v > 0; v >>= 4) {
    size[n++] = hex[v & 0xf];
  }
  while (n > 0) {
    out += size[--n];
  }
  out += "\r\n";
  out += bytes;
  out += "\r\n";
}

void append_last_chunk(std::string& out, const std::vector<field>& trailers) {
  out += "0\r\n";
  for (const field& f : trailers) {
    out += f.name;
    out += ": ";
    out += f.value;
    out += "\r\n";
  }
  out += "\r\n";
}

std::vector<field> h2_response_fields(const response_head& h) {
  std::vector<std::string_view> named;  // the options of Connection
  for (const field& f : h.fields) {
    if (iequals(f.name, "connection")) {
      std::string_view options = f.value;
      while (!options.empty()) {
        const std::size_t comma = options.find(',');
        named.push_back(trim_ows(options.substr(0, comma)));
        if (comma == std::string_view::npos) {
          break;
        }
        options.remove_prefix(comma + 1);
      }
    }
  }
  std::vector<field> out;
  out.reserve(h.fields.size());
  for (const field& f : h.fields) {
    if (is_connection_specific(f.name) || iequals(f.name, "te")) {
      continue;
    }
    bool hop = false;
    for (std::string_view n : named) {
      hop = hop || iequals(n, f.name);
    }
    if (!hop) {
      out.push_back({lower(f.name), f.value});
    }
  }
  return out;
}

}  // namespace porthole::http
