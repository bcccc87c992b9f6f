#pragma once
// What a program does when it crashes: put the terminal back as it was, print
// a readable stack trace and how to report the bug, and end with a non-zero
// status. Covers the fatal signals (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT)
// and exceptions that no one catches, in any thread.

#include <termios.h>

#include <optional>
#include <string>
#include <string_view>

namespace porthole::term {

/// Who crashed, for the report's first and last lines.
struct crash_report_info {
  std::string program;  ///< e.g. "porthole"
  std::string version;  ///< e.g. "0.1.0"
  std::string bug_url;  ///< where to report a bug
};

/// Installs the handlers for the fatal signals and std::terminate. Call once,
/// at the start of main, before any other thread starts: it also gives the
/// calling thread an alternate signal stack, so a stack overflow is reported.
/// In a build with AddressSanitizer or ThreadSanitizer only std::terminate is
/// handled: the fatal signals and alternate stacks stay the sanitizer's.
void install_crash_handler(const char* argv0, crash_report_info info);

/// Gives the calling thread an alternate signal stack (a thread that may
/// overflow its stack calls it once; the stack lives as long as the thread).
void prepare_thread_for_crash_reports();

/// The terminal state a crash report must put back first: `fd` is the
/// terminal, `saved` its modes before the program changed them (null: modes
/// not changed), `leave` the bytes that undo what the program drew (leave the
/// alternate screen, show the cursor). Replaces any earlier one.
void guard_terminal(int fd, const termios* saved, std::string_view leave);

/// The terminal is as it was: a crash report has nothing to put back.
void release_terminal();

/// Writes `bytes` to the guarded terminal, unless a crash report has begun:
/// then it writes nothing and returns false, so that no frame lands on top of
/// the report. Only the thread that draws the screen calls it.
bool write_to_terminal(int fd, std::string_view bytes);

/// The kinds of crash that tests can cause (see crash_kind_from_env).
enum class crash_kind {
  segv,              ///< a write through a null pointer
  bus,               ///< a read of a mapped page past the end of its file
  ill,               ///< an undefined instruction
  fpe,               ///< an integer division by zero
  abort,             ///< std::abort()
  stack_overflow,    ///< unbounded recursion
  exception,         ///< an exception that no one catches, on the calling thread
  thread_exception,  ///< an exception that no one catches, on a thread of its own
};

/// PORTHOLE_CRASH, a hook for the tests of the crash report and deliberately
/// left out of --help and the docs: "segv", "bus", "ill", "fpe", "abort",
/// "stack-overflow", "exception" or "thread-exception". Unset or empty: none.
/// Throws std::invalid_argument naming the kinds for any other value.
std::optional<crash_kind> crash_kind_from_env();

/// Crashes the program the way `kind` says (thread_exception returns at once;
/// its thread crashes the program).
void crash_now(crash_kind kind);

}  // namespace porthole::term
