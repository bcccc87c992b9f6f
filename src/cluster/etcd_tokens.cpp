#include "cluster/etcd_tokens.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <nlohmann/json.hpp>

namespace porthole::cluster {

namespace asio = net::asio;
using server::token_record;

namespace {

// Attempts at an add whose transaction lost to another add (the last id
// moved): each concurrent add costs the others one attempt.
constexpr int add_attempts = 32;
// Attempts at a revoke whose record changed between its read and its
// transaction (records are never rewritten, so one normally does).
constexpr int revoke_attempts = 5;

std::string to_hex(std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 0xf];
  }
  return out;
}

std::optional<std::string> from_hex(std::string_view hex) {
  if (hex.size() % 2 != 0) {
    return std::nullopt;
  }
  std::string out(hex.size() / 2, '\0');
  for (std::size_t i = 0; i < out.size(); ++i) {
    unsigned value = 0;
    const char* first = hex.data() + 2 * i;
    auto [end, ec] = std::from_chars(first, first + 2, value, 16);
    if (ec != std::errc() || end != first + 2) {
      return std::nullopt;
    }
    out[i] = static_cast<char>(value);
  }
  return out;
}

std::optional<std::int64_t> number(std::string_view text) {
  std::int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) {
    return std::nullopt;
  }
  return value;
}

}  // namespace

etcd_tokens::etcd_tokens(std::shared_ptr<etcd_client> etcd, std::string prefix)
    : etcd_(std::move(etcd)), keys_(std::move(prefix)) {
  if (!keys_.ends_with('/')) {
    keys_ += '/';
  }
  keys_ += "tokens/";
}

bool etcd_tokens::affects_tokens(std::string_view key) const {
  return key.starts_with(keys_) && !key.substr(keys_.size()).starts_with("used/");
}

std::string etcd_tokens::encode(const token_record& r) {
  auto limit = [](const std::optional<std::size_t>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
  };
  return nlohmann::json{{"id", r.id},
                        {"name", r.name},
                        {"prefix", r.prefix},
                        {"hash", to_hex(r.hash)},
                        {"subdomains", r.subdomains},
                        {"max_tunnels", limit(r.max_tunnels)},
                        {"max_tcp_ports", limit(r.max_tcp_ports)},
                        {"max_conns", limit(r.max_conns)},
                        {"created", r.created}}
      .dump();
}

std::optional<token_record> etcd_tokens::decode(std::string_view json) {
  const auto j = nlohmann::json::parse(json, nullptr, false);
  if (!j.is_object()) {
    return std::nullopt;
  }
  token_record r;
  try {
    auto limit = [&](const char* name) -> std::optional<std::size_t> {
      auto it = j.find(name);
      if (it == j.end() || it->is_null()) {
        return std::nullopt;
      }
      return it->get<std::size_t>();
    };
    r.id = j.at("id").get<std::int64_t>();
    r.name = j.value("name", "");
    r.prefix = j.value("prefix", "");
    auto hash = from_hex(j.at("hash").get<std::string>());
    if (!hash || hash->size() != 32) {
      return std::nullopt;
    }
    r.hash = std::move(*hash);
    r.subdomains = j.value("subdomains", std::vector<std::string>{});
    r.max_tunnels = limit("max_tunnels");
    r.max_tcp_ports = limit("max_tcp_ports");
    r.max_conns = limit("max_conns");
    r.created = j.value("created", std::int64_t{0});
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
  return r;
}

asio::awaitable<etcd_result<std::pair<std::string, token_record>>> etcd_tokens::add(
    server::token_request req) {
  using added = std::pair<std::string, token_record>;
  added made = server::make_token(req);
  token_record& r = made.second;
  for (int attempt = 0; attempt < add_attempts; ++attempt) {
    auto last = co_await etcd_->range(last_id_key());
    if (!last) {
      co_return failed<added>(*last.error);
    }
    std::int64_t last_id = 0;
    std::int64_t last_revision = 0;  // an absent key's mod_revision is 0 too
    if (!last.value.kvs.empty()) {
      last_id = number(last.value.kvs.front().value).value_or(-1);
      last_revision = last.value.kvs.front().mod_revision;
      if (last_id < 0) {
        co_return failed<added>(
            etcd_error{.message = "the key " + last_id_key() + " in etcd is not a number"});
      }
    }
    r.id = last_id + 1;
    const std::string id = std::to_string(r.id);
    std::vector<compare> checks{
        compare::mod_revision(last_id_key(), compare::equal, last_revision)};
    std::vector<op> write{op::put(last_id_key(), id), op::put(id_key(r.id), encode(r))};
    std::vector<op> holders;
    for (const std::string& s : r.subdomains) {
      checks.push_back(compare::create_revision(subdomain_key(s), compare::equal, 0));
      write.push_back(op::put(subdomain_key(s), id));
      holders.push_back(op::range(subdomain_key(s)));
    }
    auto done = co_await etcd_->txn(std::move(checks), std::move(write), std::move(holders));
    if (!done) {
      co_return failed<added>(*done.error);
    }
    if (done.value.succeeded) {
      co_return etcd_result<added>{std::nullopt, std::move(made)};
    }
    for (std::size_t i = 0; i < done.value.ranges.size(); ++i) {
      if (done.value.ranges[i].empty()) {
        continue;
      }
      const std::string holder = done.value.ranges[i].front().value;
      std::string name;
      auto held = co_await etcd_->range(id_key(number(holder).value_or(0)));
      if (held && !held.value.kvs.empty()) {
        if (auto rec = decode(held.value.kvs.front().value); rec && !rec->name.empty()) {
          name = " '" + rec->name + "'";
        }
      }
      throw std::invalid_argument("the subdomain '" + r.subdomains.at(i) +
                                  "' is already reserved by token " + holder + name);
    }
    // Another add took the next id first: read it again.
  }
  co_return failed<added>(etcd_error{
      .message = "other tokens kept being added at the same time; try again", .unavailable = true});
}

asio::awaitable<etcd_result<token_listing>> etcd_tokens::list() {
  auto all = co_await etcd_->range_prefix(keys_);
  if (!all) {
    co_return failed<token_listing>(*all.error);
  }
  token_listing out;
  out.revision = all.value.revision;
  std::map<std::int64_t, std::int64_t> used;
  for (const key_value& kv : all.value.kvs) {
    const std::string_view rest = std::string_view(kv.key).substr(keys_.size());
    if (rest == "last-id") {
      out.snapshot.ever_had_tokens = true;
    } else if (rest.starts_with("id/")) {
      // A record that cannot be read is no token anyone is accepted with.
      if (auto r = decode(kv.value)) {
        out.snapshot.tokens.push_back(std::move(*r));
      }
    } else if (rest.starts_with("used/")) {
      auto id = number(rest.substr(5));
      auto when = number(kv.value);
      if (id && when) {
        used[*id] = *when;
      }
    }
  }
  std::sort(out.snapshot.tokens.begin(), out.snapshot.tokens.end(),
            [](const token_record& a, const token_record& b) { return a.id < b.id; });
  for (token_record& r : out.snapshot.tokens) {
    if (auto it = used.find(r.id); it != used.end()) {
      r.last_used = it->second;
    }
  }
  co_return etcd_result<token_listing>{std::nullopt, std::move(out)};
}

asio::awaitable<etcd_result<bool>> etcd_tokens::revoke(std::int64_t id) {
  const std::string key = id_key(id);
  for (int attempt = 0; attempt < revoke_attempts; ++attempt) {
    auto found = co_await etcd_->range(key);
    if (!found) {
      co_return failed<bool>(*found.error);
    }
    if (found.value.kvs.empty()) {
      co_return etcd_result<bool>{std::nullopt, false};
    }
    const key_value& kv = found.value.kvs.front();
    std::vector<compare> unchanged{compare::mod_revision(key, compare::equal, kv.mod_revision)};
    std::vector<op> erase{op::erase(key), op::erase(used_key(id))};
    if (auto r = decode(kv.value)) {
      for (const std::string& s : r->subdomains) {
        erase.push_back(op::erase(subdomain_key(s)));
      }
    }
    auto done = co_await etcd_->txn(std::move(unchanged), std::move(erase));
    if (!done) {
      co_return failed<bool>(*done.error);
    }
    if (done.value.succeeded) {
      co_return etcd_result<bool>{std::nullopt, true};
    }
  }
  co_return failed<bool>(
      etcd_error{.message = "the token kept changing while it was revoked; try again"});
}

asio::awaitable<etcd_result<bool>> etcd_tokens::touch(std::int64_t id, std::int64_t when) {
  // Only while the token exists: a late write must not outlive a revoke.
  std::vector<compare> exists{compare::version(id_key(id), compare::greater, 0)};
  std::vector<op> write{op::put(used_key(id), std::to_string(when))};
  auto done = co_await etcd_->txn(std::move(exists), std::move(write));
  if (!done) {
    co_return failed<bool>(*done.error);
  }
  co_return etcd_result<bool>{std::nullopt, done.value.succeeded};
}

}  // namespace porthole::cluster
