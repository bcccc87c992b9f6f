#pragma once
// `portholed token add|list|revoke`: the authtokens of <state-dir>/tokens.db,
// or with --cluster those of a cluster in its etcd; and the server's
// per-token limit flags.

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "server/config.h"

namespace porthole::portholed {

/// $STATE_DIRECTORY (set by systemd's StateDirectory=), else /var/lib/porthole
/// for root, else ~/.porthole.
std::string default_state_dir();

/// Adds the `token` subcommands and the --max-*-per-token flags to `app`.
/// `state_dir` and `cfg.cluster` are the server's settings (its flags, or
/// --config's keys); a subcommand's own --state-dir and cluster flags win.
class token_cli {
 public:
  token_cli(CLI::App& app, server::server_config& cfg, std::string& state_dir);
  ~token_cli();

  /// True if the command line chose a `token` subcommand.
  bool chosen() const;

  /// Runs the chosen subcommand; the process's exit status.
  int run();

 private:
  struct options;
  std::unique_ptr<options> opt_;
};

}  // namespace porthole::portholed
