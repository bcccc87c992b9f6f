#pragma once
// Runs an io_context in slices from a test: until a coroutine has its answer,
// or until a condition holds. No sleep, and a bound that fails the test
// rather than hanging it.

#include <gtest/gtest.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <future>

namespace porthole::testing {

template <class Done>
void run_until(boost::asio::io_context& io, Done done,
               std::chrono::steady_clock::duration guard = std::chrono::seconds(20)) {
  const auto give_up = std::chrono::steady_clock::now() + guard;
  while (!done()) {
    ASSERT_LT(std::chrono::steady_clock::now(), give_up) << "not done in time";
    io.restart();
    io.run_for(std::chrono::milliseconds(5));
  }
}

template <class T>
T run(boost::asio::io_context& io, boost::asio::awaitable<T> task) {
  auto done = boost::asio::co_spawn(io, std::move(task), boost::asio::use_future);
  run_until(io, [&] { return done.wait_for(std::chrono::seconds(0)) == std::future_status::ready; });
  return done.get();
}

}  // namespace porthole::testing
