#include "client/inspector.h"

#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "client/inspector_assets.h"
#include "client/replay.h"
#include "http/ascii.h"
#include "http/base64.h"
#include "inspect/exchange_json.h"
#include "inspect/export.h"
#include "inspect/http_capture.h"
#include "net/spawn.h"

namespace porthole::client {
namespace {

namespace asio = net::asio;
namespace beast_http = boost::beast::http;
using json = nlohmann::json;
using response = local_api::response;
using status = beast_http::status;

// Captured strings may hold bytes that are not UTF-8: they are shown as U+FFFD.
std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// The page's own files may run scripts; nothing else may, and it talks only to
// this origin.
constexpr std::string_view page_policy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

std::string content_type_of(std::string_view name) {
  const auto dot = name.rfind('.');
  const std::string_view ext = dot == std::string_view::npos ? "" : name.substr(dot + 1);
  if (ext == "html")
    return "text/html; charset=utf-8";
  if (ext == "css")
    return "text/css; charset=utf-8";
  if (ext == "js" || ext == "mjs")
    return "text/javascript; charset=utf-8";
  if (ext == "svg")
    return "image/svg+xml";
  if (ext == "png")
    return "image/png";
  if (ext == "ico")
    return "image/x-icon";
  if (ext == "json")
    return "application/json";
  return "application/octet-stream";
}

response asset(const embedded_file& file) {
  response r;
  r.content_type = content_type_of(file.name);
  r.body = std::string(file.bytes);
  r.headers = {{"Content-Security-Policy", std::string(page_policy)},
               {"Cache-Control", "no-cache"}};
  return r;
}

// A positive whole number (an exchange's id, a count).
std::optional<std::int64_t> parse_id(std::string_view text) {
  std::int64_t id = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec != std::errc() || end != text.data() + text.size() || id <= 0) {
    return std::nullopt;
  }
  return id;
}

response no_such_exchange(std::string_view id) {
  return response::error(status::not_found, "no captured request with id '" + std::string(id) +
                                                "' (it may have been pruned or cleared)");
}

// {"Name": ["a", "b"]}, {"Name": "a"} or [["Name", "a"]] as a header list.
inspect::header_list headers_from_json(const json& j) {
  inspect::header_list out;
  auto add = [&](const std::string& name, const json& value) {
    if (value.is_string()) {
      out.emplace_back(name, value.get<std::string>());
    } else if (value.is_array()) {
      for (const json& v : value) {
        if (!v.is_string()) {
          throw std::invalid_argument("modify.headers: the values of '" + name +
                                      "' must be strings");
        }
        out.emplace_back(name, v.get<std::string>());
      }
    } else {
      throw std::invalid_argument("modify.headers: the value of '" + name +
                                  "' must be a string or a list of strings");
    }
  };
  if (j.is_object()) {
    for (const auto& [name, value] : j.items()) {
      add(name, value);
    }
  } else if (j.is_array()) {
    for (const json& pair : j) {
      if (!pair.is_array() || pair.size() != 2 || !pair[0].is_string()) {
        throw std::invalid_argument("modify.headers: each entry must be [name, value]");
      }
      add(pair[0].get<std::string>(), pair[1]);
    }
  } else {
    throw std::invalid_argument(
        "modify.headers must be an object {name: [values]} or a list of [name, value]");
  }
  return out;
}

std::optional<std::string> string_field(const json& j, const char* key, const char* where) {
  if (!j.contains(key) || j[key].is_null()) {
    return std::nullopt;
  }
  if (!j[key].is_string()) {
    throw std::invalid_argument(std::string(where) + key + " must be a string");
  }
  return j[key].get<std::string>();
}

replay_edit edit_from_json(const json& modify) {
  if (!modify.is_object()) {
    throw std::invalid_argument("modify must be an object");
  }
  for (const auto& [key, value] : modify.items()) {
    static constexpr std::string_view known[] = {"method",  "uri",  "path",
                                                 "headers", "body", "body_base64"};
    if (std::find(std::begin(known), std::end(known), key) == std::end(known)) {
      throw std::invalid_argument("modify." + key +
                                  " is not known (method, uri, headers, body, body_base64)");
    }
  }
  replay_edit edit;
  edit.method = string_field(modify, "method", "modify.");
  edit.target = string_field(modify, "uri", "modify.");
  if (!edit.target) {
    edit.target = string_field(modify, "path", "modify.");
  }
  if (modify.contains("headers") && !modify["headers"].is_null()) {
    edit.headers = headers_from_json(modify["headers"]);
  }
  edit.body = string_field(modify, "body", "modify.");
  if (auto b64 = string_field(modify, "body_base64", "modify.")) {
    if (edit.body) {
      throw std::invalid_argument("give modify.body or modify.body_base64, not both");
    }
    edit.body = http::from_base64(*b64);
    if (!edit.body) {
      throw std::invalid_argument("modify.body_base64 is not base64 (padded, RFC 4648)");
    }
  }
  return edit;
}

}  // namespace

struct inspector::state : std::enable_shared_from_this<inspector::state> {
  state(asio::io_context& io, local_api& api, agent& agent,
        std::shared_ptr<inspect::capture_writer> captures, std::size_t body_limit)
      : io(io),
        api(api),
        agent(agent),
        captures(std::move(captures)),
        body_limit(body_limit),
        tunnel_watch(io) {}

  asio::io_context& io;
  local_api& api;
  client::agent& agent;
  std::shared_ptr<inspect::capture_writer> captures;
  std::size_t body_limit;
  asio::steady_timer tunnel_watch;
  std::string last_tunnels;
  std::uint64_t last_dropped = 0;
  bool stopped = false;

  json tunnels_json() const {
    json tunnels = json::array();
    for (const auto& t : agent.tunnels()) {
      const auto scheme_end = t.url.find("://");
      tunnels.push_back({{"name", t.spec.name},
                         {"public_url", t.url},
                         {"proto", t.url.substr(0, scheme_end)},
                         {"config", {{"addr", t.spec.local_addr()}}}});
    }
    return {{"tunnels", tunnels}};
  }

  // Once a second: tells the page when tunnels come, go or change (a reload,
  // a reconnect with new URLs), and logs exchanges the capture had to drop.
  void watch_tunnels() {
    tunnel_watch.expires_after(std::chrono::seconds(1));
    tunnel_watch.async_wait([self = weak_from_this()](const boost::system::error_code& ec) {
      auto s = self.lock();
      if (ec || !s || s->stopped) {
        return;
      }
      std::string now = dump(s->tunnels_json());
      if (now != s->last_tunnels) {
        s->last_tunnels = std::move(now);
        s->api.publish("tunnels", s->last_tunnels);
      }
      if (const std::uint64_t dropped = s->captures->dropped(); dropped != s->last_dropped) {
        spdlog::warn(
            "inspect: {} exchange(s) were not captured in the last second ({} since start): the "
            "capture store is slower than the traffic; the traffic itself was not affected",
            dropped - s->last_dropped, dropped);
        s->last_dropped = dropped;
      }
      s->watch_tunnels();
    });
  }

  response list(const local_api::request& req) const {
    std::size_t limit = 50;
    if (auto it = req.query.find("limit"); it != req.query.end()) {
      const auto n = parse_id(it->second);
      if (!n || *n > 1000) {
        return response::error(status::bad_request,
                               "limit must be a whole number from 1 to 1000, "
                               "not '" +
                                   it->second + "'");
      }
      limit = static_cast<std::size_t>(*n);
    }
    std::optional<std::string> tunnel;
    if (auto it = req.query.find("tunnel_name"); it != req.query.end() && !it->second.empty()) {
      tunnel = it->second;
    }
    json list = json::array();
    for (const auto& e : captures->list(limit, tunnel, false)) {
      list.push_back(inspect::to_json(e, false));
    }
    return response::json(dump(
        {{"uri", "/api/requests/http"}, {"requests", list}, {"dropped", captures->dropped()}}));
  }

  // GET /api/requests/http/{id}[/curl | /request/body | /response/body]
  response one(const local_api::request& req) const {
    const std::string_view rest = req.rest;
    const auto slash = rest.find('/');
    const std::string_view id_text = rest.substr(0, slash);
    const std::string_view what = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
    const auto id = parse_id(id_text);
    auto e = id ? captures->get(*id) : std::nullopt;
    if (!e) {
      return no_such_exchange(id_text);
    }
    if (what.empty()) {
      return response::json(dump(inspect::to_json(*e, true)));
    }
    if (what == "curl") {
      response r;
      r.content_type = "text/plain; charset=utf-8";
      r.body = inspect::to_curl(*e);
      return r;
    }
    if (what == "request/body" || what == "response/body") {
      const bool of_request = what == "request/body";
      if (!of_request && !e->response) {
        return response::error(status::not_found,
                               "exchange " + std::string(id_text) + " has no response");
      }
      const inspect::header_list& headers = of_request ? e->request.headers : e->response->headers;
      const inspect::captured_body& body = of_request ? e->request.body : e->response->body;
      response r;
      r.content_type = inspect::header_value(headers, "content-type");
      if (r.content_type.empty()) {
        r.content_type = "application/octet-stream";
      }
      if (req.query.contains("raw")) {
        r.body = body.bytes;
      } else {
        inspect::body_decoding decoded = inspect::decoded_body(headers, body);
        r.body =
            decoded.complete() || !decoded.bytes.empty() ? std::move(decoded.bytes) : body.bytes;
      }
      // Captured content is someone else's: it must not run as this origin.
      // (local_api adds X-Content-Type-Options: nosniff to every answer.)
      r.headers = {{"Content-Security-Policy", "sandbox"}};
      if (req.query.contains("download")) {
        r.headers.emplace_back("Content-Disposition",
                               "attachment; filename=\"exchange-" + std::string(id_text) + "-" +
                                   (of_request ? "request" : "response") + ".bin\"");
      }
      return r;
    }
    return response::error(status::not_found,
                           "no such path: " + req.path +
                               " (after the id: nothing, /curl, /request/body or /response/body)");
  }

  response har(const local_api::request& req) const {
    std::vector<inspect::exchange> chosen;
    if (auto it = req.query.find("ids"); it != req.query.end() && !it->second.empty()) {
      std::string_view ids = it->second;
      while (!ids.empty()) {
        const auto comma = ids.find(',');
        const std::string_view one = ids.substr(0, comma);
        ids = comma == std::string_view::npos ? std::string_view{} : ids.substr(comma + 1);
        const auto id = parse_id(one);
        auto e = id ? captures->get(*id) : std::nullopt;
        if (!e) {
          return no_such_exchange(one);
        }
        chosen.push_back(std::move(*e));
      }
    } else {
      chosen = captures->list(1000);
    }
    // Oldest first, as a HAR's entries are read.
    std::sort(chosen.begin(), chosen.end(),
              [](const auto& a, const auto& b) { return a.id < b.id; });
    response r = response::json(dump(inspect::to_har(chosen, PORTHOLE_VERSION)));
    r.headers = {{"Content-Disposition", "attachment; filename=\"porthole.har\""}};
    return r;
  }

  // POST /api/requests/http {"id", "tunnel_name"?, "modify"?}
  void replay(local_api::request req, std::function<void(response)> respond) {
    json body;
    try {
      body = json::parse(req.body);
    } catch (const json::exception&) {
      respond(response::error(status::bad_request,
                              "the body must be JSON: {\"id\": \"...\", \"modify\"?: {...}}"));
      return;
    }
    if (!body.is_object() || !body.contains("id")) {
      respond(response::error(status::bad_request,
                              "the body must name the request to replay: "
                              "{\"id\": \"...\"}"));
      return;
    }
    const json& id_json = body["id"];
    const std::string id_text = id_json.is_string() ? id_json.get<std::string>()
                                : id_json.is_number_integer()
                                    ? std::to_string(id_json.get<std::int64_t>())
                                    : std::string();
    const auto id = parse_id(id_text);
    auto original = id ? captures->get(*id) : std::nullopt;
    if (!original) {
      respond(no_such_exchange(id_text.empty() ? id_json.dump() : id_text));
      return;
    }
    replay_edit edit;
    std::string tunnel_name = original->tunnel_name;
    std::string bytes;
    try {
      if (auto name = string_field(body, "tunnel_name", "")) {
        tunnel_name = *name;
      }
      if (body.contains("modify") && !body["modify"].is_null()) {
        edit = edit_from_json(body["modify"]);
      }
      bytes = replay_request(original->request, edit);
    } catch (const std::exception& e) {
      respond(response::error(status::bad_request, e.what()));
      return;
    }

    // The tunnel's local address now (it may have changed since the capture).
    std::optional<agent::live_tunnel> tunnel;
    std::vector<std::string> names;
    for (auto& t : agent.tunnels()) {
      if (!t.spec.is_http()) {
        continue;
      }
      names.push_back(t.spec.name);
      if (t.spec.name == tunnel_name && (!tunnel || t.url == original->public_url)) {
        tunnel = t;
      }
    }
    if (!tunnel) {
      respond(response::error(
          status::not_found,
          "no http tunnel named '" + tunnel_name + "' is running" +
              (names.empty() ? std::string()
                             : " (running: " + fmt::format("{}", fmt::join(names, ", ")) + ")") +
              "; give \"tunnel_name\" to replay to another"));
      return;
    }
    replay_target target{.local_host = tunnel->spec.local_host,
                         .local_port = tunnel->spec.local_port,
                         .tunnel_name = tunnel->spec.name,
                         .public_url = tunnel->url,
                         .body_limit = body_limit};
    spdlog::info("replaying request {} ({} {}) to {}{}", *id, original->request.method,
                 original->request.target, tunnel->spec.local_addr(),
                 edit.empty() ? "" : ", edited");
    net::spawn(io.get_executor(),
               run_replay(shared_from_this(), std::move(bytes), *id, std::move(target), respond),
               "replay of request " + id_text);
  }

  static asio::awaitable<void> run_replay(std::shared_ptr<state> self, std::string bytes,
                                          std::int64_t id, replay_target target,
                                          std::function<void(response)> respond) {
    replay_result result;
    try {
      result = co_await client::replay(std::move(bytes), id, std::move(target));
    } catch (const std::exception& e) {
      respond(response::error(status::internal_server_error, e.what()));
      co_return;
    }
    if (!result.exchange) {
      spdlog::warn("replay of request {} failed: {}", id, result.unreachable);
      respond(response::error(status::bad_gateway, result.unreachable));
      co_return;
    }
    try {
      result.exchange->id = self->captures->store(*result.exchange);
    } catch (const std::exception& e) {
      respond(
          response::error(status::internal_server_error,
                          std::string("the replay was sent but could not be stored: ") + e.what()));
      co_return;
    }
    const inspect::exchange& e = *result.exchange;
    spdlog::info(
        "replay of request {} is request {}: {}", id, e.id,
        e.response ? std::to_string(e.response->status) + " " + e.response->reason : e.error);
    response r = response::json(dump(inspect::to_json(e, true)), status::created);
    respond(std::move(r));
  }
};

inspector::inspector(asio::io_context& io, local_api& api, agent& agent,
                     std::shared_ptr<inspect::capture_writer> captures, std::size_t body_limit)
    : state_(std::make_shared<state>(io, api, agent, std::move(captures), body_limit)) {
  state& s = *state_;
  std::weak_ptr<state> weak = state_;

  for (const embedded_file& file : inspector_files()) {
    const std::string path = file.name == "index.html" ? "/" : "/static/" + std::string(file.name);
    api.handle(beast_http::verb::get, path,
               [r = asset(file)](const local_api::request&) { return r; });
  }
  api.handle(beast_http::verb::get, "/api/tunnels",
             [&s](const auto&) { return response::json(dump(s.tunnels_json())); });
  api.handle(beast_http::verb::get, "/api/requests/http",
             [&s](const auto& req) { return s.list(req); });
  api.handle(beast_http::verb::get, "/api/requests/http/",
             [&s](const auto& req) { return s.one(req); });
  api.handle(beast_http::verb::get, "/api/requests/har",
             [&s](const auto& req) { return s.har(req); });
  api.handle(beast_http::verb::delete_, "/api/requests/http", [&s](const auto&) {
    s.captures->clear();
    s.api.publish("clear", "{}");
    response r;
    r.status = status::no_content;
    return r;
  });
  api.handle_async(beast_http::verb::post, "/api/requests/http",
                   [&s](local_api::request req, std::function<void(response)> respond) {
                     s.replay(std::move(req), std::move(respond));
                   });
  api.handle_events("/api/events");

  // Each stored exchange goes to the page; the writer's thread hands it over.
  // Nothing is built while no page listens (the writer's thread is busy
  // enough at a high request rate); a page that opens later reads the list.
  s.captures->on_stored([weak, &io, listeners = api.event_listeners()](const inspect::exchange& e) {
    if (listeners->load(std::memory_order_relaxed) == 0) {
      return;
    }
    asio::post(io, [weak, summary = dump(inspect::to_json(e, false))] {
      if (auto self = weak.lock(); self && !self->stopped) {
        self->api.publish("request", summary);
      }
    });
  });
  s.last_tunnels = dump(s.tunnels_json());
  s.watch_tunnels();
}

inspector::~inspector() {
  state_->stopped = true;
  state_->captures->on_stored(nullptr);
  state_->tunnel_watch.cancel();
}

}  // namespace porthole::client
