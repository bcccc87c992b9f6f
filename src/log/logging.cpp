#include "log/logging.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <stdexcept>

#include "fs/owner_only.h"

namespace porthole::log {

void add_options(CLI::App& app, std::string& target, std::string& level, std::string* format) {
  app.add_option("--log", target,
                 "Log to stdout, stderr, none, or a file (the last one given wins)")
      ->capture_default_str()
      ->type_name("stdout|stderr|none|FILE")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--log-level", level,
                 "trace, debug, info, warn or error (the last one given wins)")
      ->capture_default_str()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  if (format != nullptr) {
    app.add_option("--log-format", *format,
                   "text (time, level, message, key=value fields) or json (one object per line)")
        ->capture_default_str()
        ->check(CLI::IsMember({"text", "json"}))
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  }
}

void configure(const std::string& target, const std::string& level,
               std::shared_ptr<spdlog::sinks::sink> problems, const std::string& format) {
  if (format != "text" && format != "json") {
    throw std::invalid_argument("unknown log format '" + format + "' (use text or json)");
  }
  const auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off") {
    throw std::invalid_argument("unknown log level '" + level +
                                "' (use trace, debug, info, warn or error)");
  }
  std::shared_ptr<spdlog::logger> logger;
  if (target == "stdout") {
    logger = spdlog::stdout_logger_mt("porthole");
  } else if (target == "stderr") {
    logger = spdlog::stderr_logger_mt("porthole");
  } else if (target == "none") {
    logger = spdlog::null_logger_mt("porthole");
  } else {
    // Log lines carry client ids, the credential of proxy connections: a
    // new log file is its owner's only (an existing one keeps its mode).
    fs::create_owner_only_file(target);
    try {
      logger = spdlog::basic_logger_mt("porthole", target);
    } catch (const spdlog::spdlog_ex& e) {
      throw std::runtime_error("cannot open log file " + target + ": " + e.what());
    }
  }
  if (format == "json") {
    logger->set_formatter(make_line_formatter(log::format::json));
  } else {
    // The text lines keep the pattern they always had: scripts and tests read them.
    logger->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] %v");
  }
  if (problems) {
    // The status screen shows a problem's text; it keeps its own formatter.
    problems->set_level(std::max(lvl, spdlog::level::warn));
    logger->sinks().push_back(std::move(problems));
  }
  logger->set_level(lvl);
  // Lines reach a pipe or file as they happen: tests and supervisors read them.
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
}

}  // namespace porthole::log
