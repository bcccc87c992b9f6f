#include "cluster/etcd_directory.h"

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "log/event.h"
#include "net/spawn.h"

namespace porthole::cluster {

namespace asio = net::asio;
using server::claim_answer;
using server::claim_outcome;
using server::tunnel;

namespace {

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool contains(const std::vector<std::string>& v, std::string_view s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

void add(std::vector<std::string>& v, const std::string& s) {
  if (!contains(v, s)) {
    v.push_back(s);
  }
}

void remove(std::vector<std::string>& v, std::string_view s) {
  std::erase(v, s);
}

claim_answer unavailable(std::string why) {
  return {claim_outcome::unavailable, 0, std::move(why)};
}

// Releases a name's lock when the operation on it ends, however it ends.
class name_lock {
 public:
  name_lock(std::function<void()> unlock) : unlock_(std::move(unlock)) {}
  ~name_lock() { unlock_(); }
  name_lock(const name_lock&) = delete;
  name_lock& operator=(const name_lock&) = delete;

 private:
  std::function<void()> unlock_;
};

}  // namespace

etcd_directory::etcd_directory(asio::any_io_executor ex, std::shared_ptr<etcd_client> etcd,
                               options o)
    : ex_(std::move(ex)), etcd_(std::move(etcd)), opts_(std::move(o)) {
  if (!opts_.prefix.ends_with('/')) {
    opts_.prefix += '/';
  }
}

etcd_directory::~etcd_directory() = default;

std::string etcd_directory::name_key(std::string_view name) const {
  return opts_.prefix + "names/" + std::string(name);
}

std::string etcd_directory::node_key(std::string_view id) const {
  return opts_.prefix + "nodes/" + std::string(id);
}

std::string etcd_directory::encode(const record& r) {
  nlohmann::json j{{"client", r.owner.client_id},
                   {"token", r.owner.token},
                   {"node", r.node},
                   {"live", r.live},
                   {"held", r.held}};
  if (r.held_until_ms != 0) {
    j["held_until_ms"] = r.held_until_ms;
  }
  if (r.moving) {
    j["moving"] = true;
  }
  return j.dump();
}

std::optional<etcd_directory::record> etcd_directory::decode(std::string_view text) {
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) {
    return std::nullopt;
  }
  record r;
  try {
    r.owner.client_id = j.value("client", "");
    r.owner.token = j.value("token", "");
    r.node = j.value("node", "");
    r.live = j.value("live", std::vector<std::string>{});
    r.held = j.value("held", std::vector<std::string>{});
    r.held_until_ms = j.value("held_until_ms", std::int64_t{0});
    r.moving = j.value("moving", false);
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
  if (r.owner.client_id.empty() || r.node.empty()) {
    return std::nullopt;
  }
  return r;
}

bool etcd_directory::held_now(const record& r) const {
  return r.live.empty() && r.held_until_ms > wall_ms();
}

// ---- start and stop ----

asio::awaitable<void> etcd_directory::join(server::node_addresses here) {
  auto self = shared_from_this();  // the directory lives while it joins
  opts_.node_id = here.node_id;
  opts_.node_addr = here.node_addr;
  opts_.tunnel_addr = here.tunnel_addr;
  auto granted = co_await etcd_->lease_grant(opts_.lease_ttl);
  if (!granted) {
    throw std::runtime_error("cannot reach the cluster registry (etcd): " + granted.error->message);
  }
  lease_ = granted.value.id;
  last_renewed_ = last_attempt_ = clock::now();
  const registration registered = co_await register_node();
  if (registered == registration::unreachable) {
    throw std::runtime_error("cannot register the node in etcd: it stopped answering");
  }
  if (registered == registration::id_taken) {
    throw std::runtime_error("another live node of the cluster has the node id '" + opts_.node_id +
                             "'; give each node its own --node-id");
  }
  const std::int64_t revision = co_await load();
  if (revision == 0) {
    throw std::runtime_error("cannot read the cluster's names from etcd");
  }
  watched_from_ = revision + 1;
  net::spawn(ex_, keep_lease(), "cluster lease");
  net::spawn(ex_, follow_names(), "cluster watch");
  net::spawn(ex_, forget_expired_holds(), "cluster holds");
  log::info("joined the cluster", {{"node", opts_.node_id},
                                   {"node_addr", opts_.node_addr},
                                   {"lease_ttl", opts_.lease_ttl.count()},
                                   {"nodes", nodes_.size()},
                                   {"names", names_.size()}});
}

asio::awaitable<void> etcd_directory::leave(clock::time_point deadline) {
  if (stopped_) {
    co_return;
  }
  auto self = shared_from_this();
  // The clients of a node that shuts down come back through other nodes and
  // take their names over; revoking the lease before would free the names
  // for anyone in between.
  asio::steady_timer tick(ex_);
  while (clock::now() < deadline) {
    const bool still_mine = std::any_of(names_.begin(), names_.end(), [&](const auto& kv) {
      return kv.second.node == opts_.node_id;
    });
    if (!still_mine) {
      break;
    }
    tick.expires_after(std::chrono::milliseconds(20));
    co_await tick.async_wait(net::use_nothrow);
  }
  stopped_ = true;
  stopping_.notify();
  if (watch_) {
    watch_->cancel();
  }
  mine_.clear();
  auto revoked = co_await etcd_->lease_revoke(lease_);
  if (!revoked) {
    log::warn("could not give the cluster lease back; the node's names go when it expires",
              {{"error", revoked.error->message}, {"lease_ttl", opts_.lease_ttl.count()}});
  }
}

asio::awaitable<etcd_directory::registration> etcd_directory::register_node() {
  const std::string key = node_key(opts_.node_id);
  const std::string value =
      nlohmann::json{{"node_addr", opts_.node_addr}, {"tunnel_addr", opts_.tunnel_addr}}.dump();
  std::vector<compare> absent{compare::create_revision(key, compare::equal, 0)};
  std::vector<op> create{op::put(key, value, lease_)};
  std::vector<op> read{op::range(key)};
  auto r = co_await etcd_->txn(std::move(absent), std::move(create), std::move(read));
  if (!r) {
    co_return registration::unreachable;
  }
  if (r.value.succeeded) {
    co_return registration::done;
  }
  const auto& found = r.value.ranges.at(0);
  if (!found.empty() && found.front().lease == lease_) {
    co_return registration::done;
  }
  co_return registration::id_taken;
}

asio::awaitable<std::int64_t> etcd_directory::load() {
  auto all = co_await etcd_->range_prefix(opts_.prefix);
  if (!all) {
    log::warn("cannot read the cluster's names", {{"error", all.error->message}});
    co_return 0;
  }
  names_.clear();
  nodes_.clear();
  for (const key_value& kv : all.value.kvs) {
    apply(kv.key, kv.value, kv.mod_revision, false);
  }
  co_return all.value.revision;
}

// ---- the lease ----

asio::awaitable<void> etcd_directory::keep_lease() {
  auto self = shared_from_this();
  // Often enough that etcd's absence is known before a TTL passed since the
  // last renewal, even when a call waits out its time-out.
  const auto period =
      std::max<clock::duration>(opts_.lease_ttl / 4, std::chrono::milliseconds(200));
  while (!stopped_) {
    co_await stopping_.wait_until(clock::now() + period);
    if (stopped_) {
      co_return;
    }
    const auto sent = clock::now();
    if (!sure_of_lease()) {
      // This loop did not run for a whole TTL (the process was stopped, or
      // starved): until etcd answers, the names may be someone else's.
      log::warn("the cluster lease was not renewed for a whole TTL; not serving until etcd answers",
                {{"node", opts_.node_id}, {"lease_ttl", opts_.lease_ttl.count()}});
    }
    auto r = co_await etcd_->lease_keepalive(lease_);
    last_attempt_ = clock::now();
    etcd_unreachable_ = !r && r.error->unavailable;
    if (r && r.value.count() > 0) {
      ++figures_.renewals;
      figures_.last_renew_latency =
          std::chrono::duration_cast<std::chrono::microseconds>(last_attempt_ - sent);
      last_renewed_ = sent;
      if (!registered_) {
        // The node's key did not make it after a new lease: other nodes
        // cannot reach this one until it is there.
        const registration again = co_await register_node();
        registered_ = again == registration::done;
      }
      if (state_ != lease_state::alive) {
        log::info("cluster lease renewed again", {{"node", opts_.node_id}});
      }
      state_ = lease_state::alive;
      continue;
    }
    if (r) {
      // etcd let the lease expire: every name of this node is gone, maybe
      // someone else's already. Start again with a new lease.
      drop_all("the node's cluster lease expired");
      state_ = lease_state::lost;
      auto granted = co_await etcd_->lease_grant(opts_.lease_ttl);
      if (!granted) {
        continue;
      }
      lease_ = granted.value.id;
      last_renewed_ = last_attempt_ = clock::now();
      const registration registered = co_await register_node();
      if (registered == registration::id_taken) {
        log::error(
            "another node took this node's id while its lease was lost; this node "
            "takes no new tunnels until it is restarted with its own --node-id",
            {{"node", opts_.node_id}});
        continue;
      }
      registered_ = registered == registration::done;
      state_ = lease_state::alive;
      log::info("cluster lease granted again", {{"node", opts_.node_id}});
      continue;
    }
    if (state_ == lease_state::alive && last_attempt_ - last_renewed_ > opts_.lease_ttl) {
      state_ = lease_state::uncertain;
      log::warn("cannot renew the cluster lease: etcd unreachable; serving the tunnels already up",
                {{"node", opts_.node_id}, {"error", r.error->message}});
    }
  }
}

// Said even when the watch already took the names away one by one: the
// clients' sessions still think they hold them.
void etcd_directory::drop_all(std::string_view why) {
  log::warn("this node lost its names",
            {{"node", opts_.node_id}, {"names", mine_.size()}, {"reason", why}});
  mine_.clear();
  if (on_names_lost) {
    on_names_lost(why);
  }
}

// ---- following the names ----

void etcd_directory::apply(const std::string& key, const std::string& value,
                           std::int64_t mod_revision, bool erased) {
  const std::string names = opts_.prefix + "names/";
  const std::string nodes = opts_.prefix + "nodes/";
  if (key.starts_with(nodes)) {
    const std::string id = key.substr(nodes.size());
    if (erased) {
      nodes_.erase(id);
      return;
    }
    const auto j = nlohmann::json::parse(value, nullptr, false);
    if (j.is_object()) {
      nodes_[id] = node_info{id, j.value("node_addr", ""), j.value("tunnel_addr", "")};
    }
    return;
  }
  if (!key.starts_with(names)) {
    return;
  }
  const std::string name = key.substr(names.size());
  if (name.starts_with("tcp://") && on_tcp_names_changed) {
    on_tcp_names_changed();
  }
  auto mine = mine_.find(name);
  if (erased) {
    names_.erase(name);
  } else if (auto r = decode(value)) {
    r->mod_revision = mod_revision;
    names_[name] = std::move(*r);
  } else {
    log::warn("unreadable name in etcd; ignored", {{"key", key}});
    return;
  }
  if (mine == mine_.end() || mod_revision <= mine->second.revision) {
    return;
  }
  // A later change of a name this node serves: it was taken over (the client
  // moved) or it is gone. A hint only: read it before letting it go.
  net::spawn(ex_, confirm_lost(name, mine->second.revision), "cluster confirm " + name);
}

asio::awaitable<void> etcd_directory::confirm_lost(std::string name, std::int64_t revision) {
  auto self = shared_from_this();
  auto r = co_await etcd_->range(name_key(name));
  if (!r) {
    co_return;
  }
  // What was read is as new as anything the watch has told: keep it, so the
  // name routes to its new owner at once, not after the rest of the events.
  if (r.value.kvs.empty()) {
    if (auto known = names_.find(name);
        known != names_.end() && known->second.mod_revision <= r.value.revision) {
      names_.erase(known);
    }
  } else if (auto rec = decode(r.value.kvs.front().value)) {
    auto known = names_.find(name);
    if (known == names_.end() || known->second.mod_revision < r.value.kvs.front().mod_revision) {
      rec->mod_revision = r.value.kvs.front().mod_revision;
      names_[name] = std::move(*rec);
    }
  }
  auto mine = mine_.find(name);
  if (mine == mine_.end() || mine->second.revision != revision) {
    co_return;  // claimed again meanwhile
  }
  if (!r.value.kvs.empty()) {
    const key_value& kv = r.value.kvs.front();
    if (kv.mod_revision == revision) {
      co_return;  // still ours
    }
    if (auto rec = decode(kv.value); rec && rec->node == opts_.node_id) {
      mine->second.revision = kv.mod_revision;  // our own later write
      co_return;
    }
  }
  log::info("name moved to another node or gone; no longer routed here",
            {{"name", name}, {"node", opts_.node_id}});
  mine_.erase(mine);
}

asio::awaitable<void> etcd_directory::follow_names() {
  auto self = shared_from_this();
  while (!stopped_) {
    auto w = co_await etcd_->watch(opts_.prefix, true, watched_from_);
    if (w) {
      watch_ = std::make_unique<etcd_watch>(std::move(w.value));
      for (;;) {
        auto batch = co_await watch_->next();
        if (!batch || batch.value.canceled) {
          break;
        }
        for (const auto& e : batch.value.events) {
          apply(e.kv.key, e.kv.value, e.kv.mod_revision, e.type == watch_event::kind::erase);
        }
        watched_from_ = batch.value.revision + 1;
      }
      watch_.reset();
    }
    if (stopped_) {
      co_return;
    }
    // Lost the stream (etcd restarted, a member died): read everything again
    // and follow on from there, after a breath.
    catching_up_ = true;
    co_await stopping_.wait_until(clock::now() + std::chrono::milliseconds(500));
    const std::int64_t revision = co_await load();
    if (revision != 0) {
      watched_from_ = revision + 1;
      catching_up_ = false;
    }
  }
}

asio::awaitable<void> etcd_directory::forget_expired_holds() {
  auto self = shared_from_this();
  while (!stopped_) {
    co_await stopping_.wait_until(clock::now() + std::chrono::seconds(1));
    std::vector<std::pair<std::string, std::int64_t>> expired;
    const std::int64_t now = wall_ms();
    for (const auto& [name, r] : names_) {
      if (r.node == opts_.node_id && r.live.empty() && r.held_until_ms != 0 &&
          r.held_until_ms <= now) {
        expired.emplace_back(name, r.mod_revision);
      }
    }
    for (const auto& [name, revision] : expired) {
      const std::string key = name_key(name);
      std::vector<compare> unchanged{compare::mod_revision(key, compare::equal, revision)};
      std::vector<op> erase{op::erase(key)};
      co_await etcd_->txn(std::move(unchanged), std::move(erase));
    }
  }
}

// ---- claims ----

asio::awaitable<void> etcd_directory::lock(const std::string& name) {
  while (locked_.contains(name)) {
    co_await unlocked_.wait_until(clock::time_point::max());
  }
  locked_.insert(name);
}

void etcd_directory::unlock(const std::string& name) {
  if (auto it = locked_.find(name); it != locked_.end()) {
    locked_.erase(it);
  }
  unlocked_.notify();
}

asio::awaitable<claim_answer> etcd_directory::claim(std::string name, server::claimant who,
                                                    std::vector<std::shared_ptr<tunnel>> tunnels) {
  auto self = shared_from_this();
  co_await lock(name);
  name_lock unlock_at_end([this, name] { unlock(name); });
  const claim_answer got = co_await claim_in_etcd(name, who, tunnels);
  if (got.won()) {
    ++figures_.claims_won;
  } else if (got.outcome != claim_outcome::unavailable) {
    ++figures_.claims_lost;
  }
  co_return got;
}

asio::awaitable<claim_answer> etcd_directory::claim_in_etcd(
    const std::string& name, const server::claimant& who,
    const std::vector<std::shared_ptr<tunnel>>& tunnels) {
  if (state_ != lease_state::alive) {
    co_return unavailable("this node cannot renew its lease");
  }
  std::vector<std::string> schemes;
  for (const auto& t : tunnels) {
    add(schemes, t->protocol);
  }
  const std::string key = name_key(name);
  for (int attempt = 0; attempt < 5; ++attempt) {
    record fresh{who, opts_.node_id, schemes, {}, 0, 0};
    std::vector<compare> absent{compare::create_revision(key, compare::equal, 0)};
    std::vector<op> create{op::put(key, encode(fresh), lease_)};
    std::vector<op> read{op::range(key)};
    auto created = co_await etcd_->txn(std::move(absent), std::move(create), std::move(read));
    if (!created) {
      co_return unavailable(created.error->message);
    }
    std::int64_t revision = 0;
    if (created.value.succeeded) {
      revision = created.value.revision;
    } else {
      const auto& found = created.value.ranges.at(0);
      if (found.empty()) {
        continue;  // deleted meanwhile: try to create it again
      }
      const key_value& kv = found.front();
      const auto existing = decode(kv.value);
      const bool same = existing && existing->owner.client_id == who.client_id &&
                        existing->owner.token == who.token;
      const bool hold_over = existing && existing->live.empty() && existing->held_until_ms != 0 &&
                             existing->held_until_ms <= wall_ms();
      if (!same && !hold_over) {
        const bool held = existing && existing->live.empty();
        co_return claim_answer{held ? claim_outcome::held_elsewhere : claim_outcome::live_elsewhere,
                               kv.mod_revision, ""};
      }
      // The client's own name: it keeps the schemes it serves from this node
      // and takes the name over from another node at the revision read.
      record next = fresh;
      if (same && existing->node == opts_.node_id) {
        next.live = existing->live;
        for (const auto& s : schemes) {
          add(next.live, s);
        }
      }
      if (same) {
        next.held = existing->held;
        for (const auto& s : schemes) {
          remove(next.held, s);
        }
      }
      std::vector<compare> unchanged{compare::mod_revision(key, compare::equal, kv.mod_revision)};
      std::vector<op> take{op::put(key, encode(next), lease_)};
      auto taken = co_await etcd_->txn(std::move(unchanged), std::move(take));
      if (!taken) {
        co_return unavailable(taken.error->message);
      }
      if (!taken.value.succeeded) {
        continue;  // changed since read: read again
      }
      revision = taken.value.revision;
      fresh = next;
    }
    standby_.erase(name);
    owned& o = mine_[name];
    for (const auto& t : tunnels) {
      o.live[t->protocol] = t;
    }
    o.revision = revision;
    fresh.mod_revision = revision;
    names_[name] = fresh;
    co_return claim_answer{claim_outcome::won, revision, ""};
  }
  co_return unavailable("the name kept changing while claimed");
}

asio::awaitable<bool> etcd_directory::stand_by(std::string name, server::claimant who,
                                               std::vector<std::shared_ptr<tunnel>> tunnels) {
  auto self = shared_from_this();
  // Read, not the watch's copy: the client's claim on its main node may be
  // a moment old.
  auto r = co_await etcd_->range(name_key(name));
  if (!r || r.value.kvs.empty()) {
    co_return false;
  }
  const auto rec = decode(r.value.kvs.front().value);
  if (!rec || rec->owner.client_id != who.client_id || rec->owner.token != who.token ||
      rec->node == opts_.node_id || mine_.contains(name)) {
    co_return false;
  }
  standing_by& s = standby_[name];
  if (s.owner.client_id != who.client_id) {
    s = standing_by{who, {}};
  }
  for (const auto& t : tunnels) {
    s.live[t->protocol] = t;
  }
  co_return true;
}

void etcd_directory::release(const tunnel& t, clock::time_point hold_until) {
  const std::string& name = t.routing_name();
  if (t.standby) {
    // Never in etcd: the client's claim is its main node's business.
    if (auto s = standby_.find(name); s != standby_.end()) {
      if (auto live = s->second.live.find(t.protocol);
          live != s->second.live.end() && live->second.get() == &t) {
        s->second.live.erase(live);
      }
      if (s->second.live.empty()) {
        standby_.erase(s);
      }
    }
    return;
  }
  auto mine = mine_.find(name);
  if (mine == mine_.end()) {
    return;
  }
  auto live = mine->second.live.find(t.protocol);
  if (live == mine->second.live.end() || live->second.get() != &t) {
    return;  // not routed to this tunnel: a newer one of the client replaced it
  }
  mine->second.live.erase(live);
  if (mine->second.live.empty()) {
    mine_.erase(mine);
  }
  const auto now = clock::now();
  const std::int64_t until_ms =
      hold_until > now
          ? wall_ms() +
                std::chrono::duration_cast<std::chrono::milliseconds>(hold_until - now).count()
          : 0;
  net::spawn(ex_, release_in_etcd(name, t.protocol, t.client_id, until_ms),
             "cluster release " + name);
}

asio::awaitable<void> etcd_directory::release_in_etcd(std::string name, std::string scheme,
                                                      std::string client_id,
                                                      std::int64_t hold_until_ms) {
  auto self = shared_from_this();
  co_await lock(name);
  name_lock unlock_at_end([this, name] { unlock(name); });
  if (auto mine = mine_.find(name); mine != mine_.end() && mine->second.live.contains(scheme)) {
    co_return;  // claimed again meanwhile
  }
  const std::string key = name_key(name);
  for (int attempt = 0; attempt < 5 && !stopped_; ++attempt) {
    auto r = co_await etcd_->range(key);
    if (!r || r.value.kvs.empty()) {
      co_return;  // the hold goes with the lease if etcd cannot be reached
    }
    const key_value& kv = r.value.kvs.front();
    auto rec = decode(kv.value);
    if (!rec || rec->node != opts_.node_id || rec->owner.client_id != client_id) {
      co_return;  // someone else's now
    }
    remove(rec->live, scheme);
    if (hold_until_ms != 0) {
      add(rec->held, scheme);
    } else {
      remove(rec->held, scheme);
    }
    if (rec->live.empty()) {
      rec->held_until_ms = hold_until_ms;
      rec->moving = leaving_ && hold_until_ms != 0;
    }
    std::vector<op> change;
    if (rec->live.empty() && (rec->held.empty() || hold_until_ms == 0)) {
      change.push_back(op::erase(key));
    } else {
      change.push_back(op::put(key, encode(*rec), lease_));
    }
    std::vector<compare> unchanged{compare::mod_revision(key, compare::equal, kv.mod_revision)};
    auto done = co_await etcd_->txn(std::move(unchanged), std::move(change));
    if (!done || done.value.succeeded) {
      co_return;
    }
  }
}

// ---- lookups ----

server::route etcd_directory::find(std::string_view scheme, std::string_view name) const {
  if (auto mine = mine_.find(name); mine != mine_.end()) {
    if (!sure_of_lease()) {
      return {nullptr, 0, std::nullopt, true, false};  // 503, retry: until etcd answers
    }
    if (auto t = mine->second.live.find(scheme); t != mine->second.live.end()) {
      return {t->second, mine->second.revision, std::nullopt, false, false};
    }
  }
  auto it = names_.find(name);
  if (it == names_.end()) {
    return {};
  }
  const record& r = it->second;
  if (auto s = standby_.find(name); s != standby_.end() && r.owner == s->second.owner &&
                                    (!r.live.empty() || held_now(r)) && sure_of_lease()) {
    // The client's other connection serves it here, as long as the name is
    // the client's: no hop to the node of its main connection, and none
    // while that node is gone and the client moves its claim here. The
    // watch may show that move (the claim on this node) before the claim's
    // own answer: until then the standby connection still serves it.
    if (auto t = s->second.live.find(scheme); t != s->second.live.end()) {
      return {t->second, r.mod_revision, std::nullopt, false, false};
    }
  }
  if (r.node == opts_.node_id && contains(r.live, scheme)) {
    // Released here a moment ago; etcd does not say so yet.
    return {nullptr, 0, std::nullopt, true, leaving_};
  }
  if (r.node != opts_.node_id && contains(r.live, scheme)) {
    if (auto node = nodes_.find(r.node); node != nodes_.end()) {
      return {nullptr, 0, server::remote_owner{r.node, node->second.node_addr, r.mod_revision},
              false, false};
    }
  }
  if (contains(r.held, scheme) && !r.live.empty()) {
    // One scheme of the name given up, another still live: its node is
    // releasing them one after the other (a disconnect, a node that stops),
    // and etcd will say in a moment whether the client moves. Worth a wait.
    return {nullptr, 0, std::nullopt, true, true};
  }
  return {nullptr, 0, std::nullopt, held_now(r), held_now(r) && r.moving};
}

// The lease was renewed less than a TTL ago, or etcd cannot be reached at
// all (then nobody can claim anything). Otherwise this node may have been
// stopped past its TTL (SIGSTOP, a long pause) and its names given to
// others: until etcd answers, it serves none of them.
bool etcd_directory::sure_of_lease() const {
  return clock::now() - last_renewed_ <= opts_.lease_ttl || etcd_unreachable_;
}

std::vector<server::held_name> etcd_directory::held_by(std::string_view client_id) const {
  // Held after a disconnect, or still live on another node: a client that
  // comes back here (its node died, or it moved) takes those back too.
  std::vector<server::held_name> out;
  for (const auto& [name, r] : names_) {
    if (r.owner.client_id != client_id) {
      continue;
    }
    if (!r.held.empty() && held_now(r)) {
      out.push_back({name, r.held});
    } else if (r.node != opts_.node_id && !r.live.empty()) {
      out.push_back({name, r.live});
    }
  }
  return out;
}

bool etcd_directory::is_free(std::string_view name) const {
  auto it = names_.find(name);
  return it == names_.end() ||
         (it->second.live.empty() && it->second.held_until_ms != 0 && !held_now(it->second));
}

std::vector<std::shared_ptr<tunnel>> etcd_directory::local_tunnels() const {
  std::vector<std::shared_ptr<tunnel>> out;
  for (const auto& [name, o] : mine_) {
    for (const auto& [scheme, t] : o.live) {
      out.push_back(t);
    }
  }
  return out;
}

std::vector<node_info> etcd_directory::peers() const {
  std::vector<node_info> out;
  for (const auto& [id, n] : nodes_) {
    if (id != opts_.node_id) {
      out.push_back(n);
    }
  }
  return out;
}

std::vector<std::string> etcd_directory::tcp_names() const {
  std::vector<std::string> out;
  for (const auto& [name, r] : names_) {
    if (name.starts_with("tcp://") && contains(r.live, "tcp")) {
      out.push_back(name);
    }
  }
  return out;
}

std::vector<std::string> etcd_directory::other_nodes() const {
  std::vector<std::string> out;
  for (const node_info& n : peers()) {
    if (!n.tunnel_addr.empty()) {
      out.push_back(n.tunnel_addr);
    }
  }
  return out;
}

std::optional<server::cluster_figures> etcd_directory::figures() const {
  server::cluster_figures f;
  f.node_id = opts_.node_id;
  f.nodes = nodes_.size();
  f.lease_alive = state_ == lease_state::alive &&
                  clock::now() - last_renewed_ <= opts_.lease_ttl + opts_.request_timeout;
  f.lease_lost = state_ == lease_state::lost;
  f.claims_won = figures_.claims_won;
  f.claims_lost = figures_.claims_lost;
  f.renewals = figures_.renewals;
  f.last_renew_seconds = std::chrono::duration<double>(figures_.last_renew_latency).count();
  return f;
}

}  // namespace porthole::cluster
