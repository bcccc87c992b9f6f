#include "log/logging.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <stdexcept>

namespace porthole::log {

void configure(const std::string& target, const std::string& level) {
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
    try {
      logger = spdlog::basic_logger_mt("porthole", target);
    } catch (const spdlog::spdlog_ex& e) {
      throw std::runtime_error("cannot open log file " + target + ": " + e.what());
    }
  }
  logger->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] %v");
  logger->set_level(lvl);
  // Lines reach a pipe or file as they happen: tests and supervisors read them.
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
}

}  // namespace porthole::log
