#include "tensair/common/log.hpp"

#include <spdlog/sinks/stdout_sinks.h>

#include <cstdlib>
#include <mutex>
#include <string>

namespace tensair {
namespace {

std::shared_ptr<spdlog::logger> make_logger() {
  auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  auto logger = std::make_shared<spdlog::logger>("tensair", sink);
  logger->set_pattern("tensair: %l: %v");
  logger->set_level(spdlog::level::info);
  if (const char* level = std::getenv("TENSAIR_LOG")) {
    logger->set_level(spdlog::level::from_str(level));
  }
  logger->flush_on(spdlog::level::trace);
  return logger;
}

std::shared_ptr<spdlog::logger>& instance() {
  static std::shared_ptr<spdlog::logger> logger = make_logger();
  return logger;
}

}  // namespace

spdlog::logger& log() { return *instance(); }

void set_log_rank(int rank, int world_size) {
  if (world_size > 1) {
    instance()->set_pattern("tensair: [rank " + std::to_string(rank) + "] %l: %v");
  }
}

}  // namespace tensair
