#include "term/status_board.h"

#include <spdlog/sinks/base_sink.h>

#include <algorithm>
#include <utility>

namespace porthole::term {

status_board::status_board(std::string client_version,
                           std::function<steady_clock::time_point()> now)
    : now_(std::move(now)), started_(now_()) {
  state_.client_version = std::move(client_version);
}

void status_board::on_change(std::function<void()> callback) {
  std::lock_guard lock(mutex_);
  on_change_ = std::move(callback);
}

void status_board::on_first_connection(std::function<void()> callback) {
  std::lock_guard lock(mutex_);
  on_first_connection_ = std::move(callback);
}

void status_board::set_web_interface(std::string url) {
  update([&] { state_.web_interface = std::move(url); });
}

void status_board::set_offline(std::string reason) {
  update([&] {
    state_.state = link_state::offline;
    state_.offline_reason = std::move(reason);
  });
}

void status_board::note_problem(std::string text) {
  update([&] {
    state_.last_problem = problem_row{std::chrono::system_clock::now(), std::move(text)};
  });
}

status_snapshot status_board::snapshot() {
  const steady_clock::time_point now = now_();
  const auto second =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  std::lock_guard lock(mutex_);
  dirty_ = false;
  status_snapshot s = state_;
  s.requests.assign(requests_.begin(), requests_.end());
  std::uint64_t last_minute = 0;
  for (const auto& [sec, count] : per_second_) {
    if (sec > second - 60 && sec <= second) {
      last_minute += count;
    }
  }
  const double window =
      std::clamp(std::chrono::duration<double>(now - started_).count(), 1.0, 60.0);
  s.requests_per_second = static_cast<double>(last_minute) / window;
  return s;
}

void status_board::connecting() {
  update([&] {
    if (state_.state != link_state::offline) {
      state_.state = state_.state == link_state::connecting ? link_state::connecting
                                                            : link_state::reconnecting;
      state_.retry_at = {};
    }
  });
}

void status_board::online(const std::string& server_version) {
  update([&] {
    state_.state = link_state::online;
    state_.server_version = server_version;
    state_.refused.clear();  // every tunnel is asked for again
  });
}

void status_board::reconnecting(steady_clock::time_point retry_at) {
  update([&] {
    state_.state = link_state::reconnecting;
    state_.retry_at = retry_at;
  });
}

void status_board::tunnels_changed(const std::vector<client::live_tunnel>& up) {
  update([&] {
    state_.forwarding.clear();
    for (const client::live_tunnel& t : up) {
      state_.forwarding.push_back({t.url, t.spec.local_addr(), t.spec.name});
      std::erase_if(state_.refused, [&](const refused_row& r) {
        return r.name == t.spec.name && r.protocol == t.spec.protocol;
      });
    }
  });
}

void status_board::tunnel_refused(const client::tunnel_spec& t, const std::string& error) {
  update([&] {
    std::erase_if(state_.refused, [&](const refused_row& r) {
      return r.name == t.name && r.protocol == t.protocol;
    });
    state_.refused.push_back({t.name, t.protocol, error});
  });
}

void status_board::connection_opened() {
  std::function<void()> first;
  update([&] {
    ++state_.open_connections;
    ++state_.total_connections;
    first = std::exchange(on_first_connection_, nullptr);
  });
  if (first) {
    first();
  }
}

void status_board::connection_closed() {
  update([&] {
    if (state_.open_connections > 0) {
      --state_.open_connections;
    }
  });
}

void status_board::exchange_done(const inspect::exchange& e) {
  request_row row;
  row.method = e.request.method;
  if (e.request.version == "HTTP/2") {
    row.protocol = "h2";
  }
  row.target = e.request.target;
  if (e.response) {
    row.status = e.response->status;
    row.reason = e.response->reason;
  }
  row.duration = e.duration;
  row.error = e.error;
  const auto second =
      std::chrono::duration_cast<std::chrono::seconds>(now_().time_since_epoch()).count();

  update([&] {
    requests_.push_front(std::move(row));
    if (requests_.size() > kept_requests) {
      requests_.pop_back();
    }
    ++state_.total_requests;
    auto& bucket = per_second_[static_cast<std::size_t>(second % 60)];
    if (bucket.first != second) {
      bucket = {second, 0};
    }
    ++bucket.second;
  });
}

namespace {

class board_sink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit board_sink(std::shared_ptr<status_board> board) : board_(std::move(board)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    if (msg.level >= spdlog::level::warn) {
      board_->note_problem(std::string(msg.payload.data(), msg.payload.size()));
    }
  }
  void flush_() override {}

 private:
  std::shared_ptr<status_board> board_;
};

}  // namespace

std::shared_ptr<spdlog::sinks::sink> problem_sink(std::shared_ptr<status_board> board) {
  return std::make_shared<board_sink>(std::move(board));
}

}  // namespace porthole::term
