#include "term/crash.h"

#include <absl/debugging/symbolize.h>
#include <cxxabi.h>
#include <execinfo.h>
#include <fcntl.h>
#include <link.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <typeinfo>

// Everything reached from a signal handler below is async-signal-safe: write(),
// tcsetattr(), nanosleep(), sigaction(), raise(), alarm(), absl::Symbolize
// (made for this) and backtrace(), whose one unsafe step, loading libgcc's
// unwinder, is done at installation. The report is formatted into a fixed
// buffer on the stack, never with malloc.

namespace porthole::term {

namespace {

constexpr int fatal_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
constexpr std::size_t alt_stack_size = 256 * 1024;
constexpr int max_frames = 64;
constexpr unsigned report_alarm_seconds = 10;  // a hung report still ends the program

// A build with AddressSanitizer or ThreadSanitizer leaves the fatal signals and
// the alternate signal stacks to the sanitizer: its own handlers report an
// invalid access with what this one cannot know (the allocation, the other
// thread), and replacing them would hide that report. Uncaught exceptions are
// still reported here. See docs/TESTING.md.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool sanitizer_owns_signals = true;
#else
constexpr bool sanitizer_owns_signals = false;
#endif

// Set once by install_crash_handler, read by the handlers.
crash_report_info* report_info = nullptr;

// The loaded objects, listed at installation, so that a frame in a library
// without symbols still says where it is ("libc.so.6+0x2724a").
struct module {
  char name[128];
  std::uintptr_t base;  // load bias: file offsets are address - base
  std::uintptr_t start;
  std::uintptr_t end;
};
module modules[64];
int module_count = 0;

// The terminal to put back (see guard_terminal). `terminal_fd` is written
// last and read first, so the other fields are complete whenever it is >= 0.
std::atomic<int> terminal_fd{-1};
termios terminal_saved{};
bool terminal_modes_saved = false;
char terminal_leave[64];
std::size_t terminal_leave_size = 0;

// The handshake between the thread that draws and a crash report: the drawer
// marks a write in progress, then looks for a report; the report marks itself,
// then waits (a little) for a write in progress.
std::atomic<bool> report_begun{false};
std::atomic<bool> frame_in_progress{false};
std::atomic<pid_t> drawing_thread{0};

// The thread writing the report, 0 before any.
std::atomic<pid_t> reporting_thread{0};
std::atomic<int> reported_signal{0};  // what the report is about (SIGABRT for std::terminate)

// A report, built in a fixed buffer and written to stderr as it fills.
class report_writer {
 public:
  ~report_writer() { flush(); }
  report_writer& text(const char* s) { return text(s, std::strlen(s)); }
  report_writer& text(const char* s, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      put(s[i]);
    }
    return *this;
  }
  // Text from elsewhere (an exception's message): control characters become
  // '?', so that it cannot move the cursor or change the terminal.
  report_writer& untrusted(const char* s) {
    for (; *s != '\0'; ++s) {
      const auto c = static_cast<unsigned char>(*s);
      put(c == '\n' || c == '\t' || (c >= 0x20 && c != 0x7f) ? *s : '?');
    }
    return *this;
  }
  report_writer& hex(std::uintptr_t v, int min_digits = 1) {
    char digits[2 * sizeof v];
    int n = 0;
    do {
      digits[n++] = "0123456789abcdef"[v & 0xf];
      v >>= 4;
    } while (v != 0 || n < min_digits);
    text("0x");
    while (n > 0) {
      put(digits[--n]);
    }
    return *this;
  }
  report_writer& number(long v) {
    char digits[24];
    int n = 0;
    const bool negative = v < 0;
    unsigned long u =
        negative ? 0UL - static_cast<unsigned long>(v) : static_cast<unsigned long>(v);
    do {
      digits[n++] = static_cast<char>('0' + u % 10);
      u /= 10;
    } while (u != 0);
    if (negative) {
      put('-');
    }
    while (n > 0) {
      put(digits[--n]);
    }
    return *this;
  }
  void flush() {
    std::size_t done = 0;
    while (done < used_) {
      const ssize_t n = ::write(STDERR_FILENO, buf_ + done, used_ - done);
      if (n <= 0) {
        if (n < 0 && errno == EINTR) {
          continue;
        }
        break;
      }
      done += static_cast<std::size_t>(n);
    }
    used_ = 0;
  }

 private:
  void put(char c) {
    if (used_ == sizeof buf_) {
      flush();
    }
    buf_[used_++] = c;
  }
  char buf_[2048];
  std::size_t used_ = 0;
};

pid_t this_thread() {
  return gettid();
}

// "in thread 4885 (status-screen)"
void write_thread(report_writer& out) {
  char name[17] = {};
  out.text(", in thread ").number(this_thread());
  if (prctl(PR_GET_NAME, name) == 0 && name[0] != '\0') {
    out.text(" (").untrusted(name).text(")");
  }
}

void sleep_ms(long ms) {
  timespec ts{0, ms * 1000 * 1000};
  nanosleep(&ts, nullptr);
}

// Leaves the screen the program drew and puts the terminal's modes back.
void put_terminal_back() {
  report_begun.store(true);
  const int fd = terminal_fd.load();
  if (fd < 0) {
    return;
  }
  if (drawing_thread.load() != this_thread()) {
    for (int i = 0; i < 200 && frame_in_progress.load(); ++i) {
      sleep_ms(1);
    }
  }
  std::size_t done = 0;
  while (done < terminal_leave_size) {
    const ssize_t n = ::write(fd, terminal_leave + done, terminal_leave_size - done);
    if (n <= 0 && errno != EINTR) {
      break;
    }
    done += n > 0 ? static_cast<std::size_t>(n) : 0;
  }
  if (terminal_modes_saved) {
    tcsetattr(fd, TCSANOW, &terminal_saved);
  }
}

// Ends the program with `signo`'s default action (a core dump where enabled).
void die_by(int signo) {
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(signo, &dfl, nullptr);
  raise(signo);
  // Blocked while its handler runs: it arrives when the handler returns.
  // Anything else that comes back here ends the process anyway.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, signo);
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  _exit(128 + signo);
}

void write_footer(report_writer& out);

// The report's alarm: the stack trace hung (seen with qemu-arm's signal
// frames). The report ends with how to report the bug, and the program dies of
// the signal it crashed with.
void on_report_timeout(int) {
  {
    report_writer out;
    out.text("  ... (the stack trace did not finish within ")
        .number(report_alarm_seconds)
        .text(" s)\n");
    write_footer(out);
  }
  die_by(reported_signal.load());
}

// True for the first thread to crash. A second thread that crashes meanwhile
// waits for the first report to end the process; a crash inside the report
// ends it at once.
bool claim_report(int signo) {
  pid_t none = 0;
  const pid_t me = this_thread();
  if (reporting_thread.compare_exchange_strong(none, me)) {
    reported_signal.store(signo);
    struct sigaction sa {};
    sa.sa_handler = &on_report_timeout;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, nullptr);
    alarm(report_alarm_seconds);
    return true;
  }
  if (none == me) {
    report_writer().text("\n(crashed again while writing the crash report)\n");
    die_by(signo);
  }
  for (;;) {
    pause();
  }
}

const module* module_of(std::uintptr_t addr) {
  for (int i = 0; i < module_count; ++i) {
    if (addr >= modules[i].start && addr < modules[i].end) {
      return &modules[i];
    }
  }
  return nullptr;
}

// absl::Symbolize finds a frame's object through /proc/self/task/<tid>/maps.
// qemu-user emulates /proc/self/maps but not that file, which then lists
// qemu's own mappings: the symbolizer finds no names there, and for a 32-bit
// guest it can spin until the report's alarm. It is used only if that file
// holds the program's first mapping; otherwise frames are offsets only.
bool symbolizer_usable = true;

bool task_maps_describe_this_program() {
  if (module_count == 0) {
    return true;
  }
  std::ifstream maps("/proc/self/task/" + std::to_string(this_thread()) + "/maps");
  std::string line;
  while (std::getline(maps, line)) {
    std::uintptr_t start = 0;
    const char* end = line.data() + line.size();
    if (std::from_chars(line.data(), end, start, 16).ec == std::errc() &&
        start == modules[0].start) {
      return true;
    }
  }
  return false;
}

int list_module(dl_phdr_info* info, std::size_t, void*) {
  if (module_count == static_cast<int>(std::size(modules))) {
    return 1;
  }
  module& m = modules[module_count];
  std::uintptr_t start = UINTPTR_MAX;
  std::uintptr_t end = 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const auto& ph = info->dlpi_phdr[i];
    if (ph.p_type == PT_LOAD) {
      start = std::min<std::uintptr_t>(start, info->dlpi_addr + ph.p_vaddr);
      end = std::max<std::uintptr_t>(end, info->dlpi_addr + ph.p_vaddr + ph.p_memsz);
    }
  }
  if (start >= end) {
    return 0;
  }
  // The program itself has an empty name; its path is in /proc/self/exe.
  const char* path = info->dlpi_name;
  char exe[sizeof m.name];
  if (path == nullptr || *path == '\0') {
    const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    path = exe;
  }
  const char* slash = std::strrchr(path, '/');
  const char* base_name = slash != nullptr ? slash + 1 : path;
  if (*base_name == '\0') {
    return 0;
  }
  const std::size_t n = std::min(std::strlen(base_name), sizeof m.name - 1);
  std::memcpy(m.name, base_name, n);
  m.name[n] = '\0';
  m.base = info->dlpi_addr;
  m.start = start;
  m.end = end;
  ++module_count;
  return 0;
}

// `fault_pc`: where the signal struck, or 0 (std::terminate). Frames above it
// are the handler's own and are left out; the others are return addresses,
// looked up one byte back so that a call at a function's end names the caller.
__attribute__((noinline)) void write_stack_trace(report_writer& out, std::uintptr_t fault_pc,
                                                 int skip) {
  // What is written so far is out before the unwinder runs: if it never
  // returns, the report's alarm still finds the header on the screen.
  out.text("Stack trace (most recent call first):\n");
  out.flush();
  void* frames[max_frames];
  const int depth = backtrace(frames, max_frames);
  int first = skip;
  if (fault_pc != 0) {
    for (int i = 0; i < depth; ++i) {
      if (reinterpret_cast<std::uintptr_t>(frames[i]) == fault_pc) {
        first = i;
        break;
      }
    }
  }
  for (int i = first, n = 0; i < depth; ++i, ++n) {
    const auto addr = reinterpret_cast<std::uintptr_t>(frames[i]);
    const std::uintptr_t lookup = addr == fault_pc ? addr : addr - 1;
    char name[1024];
    const bool named = symbolizer_usable &&
                       absl::Symbolize(reinterpret_cast<const void*>(lookup), name, sizeof name);
    out.text("  #").number(n).text(n < 10 ? "  " : " ").hex(addr, 12).text("  ");
    // A name the demangler gave up on stays mangled, and can be long.
    constexpr std::size_t longest_name = 160;
    if (named && std::strlen(name) > longest_name) {
      std::memcpy(name + longest_name - 3, "...", 4);
    }
    out.text(named ? name : "??");
    if (const module* m = module_of(lookup)) {
      out.text("  (").text(m->name).text("+").hex(addr - m->base).text(")");
    }
    out.text("\n");
  }
  if (depth == max_frames) {
    out.text("  ... (deeper frames left out)\n");
  }
}

void write_header(report_writer& out) {
  out.text("\n").text(report_info->program.c_str()).text(" ").text(report_info->version.c_str());
  out.text(" crashed: ");
}

void write_footer(report_writer& out) {
  const char* name = report_info->program.c_str();
  out.text("\nThis is a bug in ")
      .text(name)
      .text(", not something you did. Please report it at\n  ");
  out.text(report_info->bug_url.c_str());
  out.text("\nand include:\n");
  out.text("  - this whole report, from \"").text(name).text(" ");
  out.text(report_info->version.c_str()).text(" crashed\" to here;\n");
  out.text("  - the command you ran, and your config file with the authtoken removed;\n");
  out.text("  - what was happening just before (a log helps: --log FILE --log-level debug);\n");
  out.text("  - your system (uname -a) and the server you use, with its version.\n");
}

const char* signal_name(int signo) {
  switch (signo) {
    case SIGSEGV:
      return "SIGSEGV (invalid memory access)";
    case SIGBUS:
      return "SIGBUS (bus error: memory that cannot be accessed)";
    case SIGILL:
      return "SIGILL (illegal instruction)";
    case SIGFPE:
      return "SIGFPE (arithmetic error)";
    case SIGABRT:
      return "SIGABRT (aborted)";
    default:
      return "a fatal signal";
  }
}

std::uintptr_t program_counter(const void* context) {
  const auto* uc = static_cast<const ucontext_t*>(context);
  if (uc == nullptr) {
    return 0;
  }
#if defined(__x86_64__)
  return static_cast<std::uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]);
#elif defined(__aarch64__)
  return static_cast<std::uintptr_t>(uc->uc_mcontext.pc);
#elif defined(__arm__)
  return static_cast<std::uintptr_t>(uc->uc_mcontext.arm_pc);
#elif defined(__i386__)
  return static_cast<std::uintptr_t>(uc->uc_mcontext.gregs[REG_EIP]);
#else
  return 0;
#endif
}

void on_fatal_signal(int signo, siginfo_t* info, void* context) {
  const int saved_errno = errno;
  claim_report(signo);
  put_terminal_back();
  {
    report_writer out;
    write_header(out);
    out.text(signal_name(signo));
    if (info != nullptr && info->si_code > 0) {  // the kernel's, for what this program did
      if (signo == SIGSEGV || signo == SIGBUS) {
        out.text(" at address ").hex(reinterpret_cast<std::uintptr_t>(info->si_addr));
      }
    } else if (info != nullptr && info->si_pid != getpid()) {
      out.text(", sent by process ").number(info->si_pid);
    }
    write_thread(out);
    out.text("\n\n");
    write_stack_trace(out, program_counter(context), 1);
    write_footer(out);
  }
  errno = saved_errno;
  die_by(signo);
}

void on_terminate() {
  claim_report(SIGABRT);
  put_terminal_back();
  {
    report_writer out;
    write_header(out);
    if (std::exception_ptr e = std::current_exception()) {
      const std::type_info* type = abi::__cxa_current_exception_type();
      int status = 0;
      std::unique_ptr<char, decltype(&std::free)> demangled(
          type != nullptr ? abi::__cxa_demangle(type->name(), nullptr, nullptr, &status) : nullptr,
          &std::free);
      out.text("an exception nothing caught, ");
      out.text(demangled ? demangled.get() : type != nullptr ? type->name() : "of unknown type");
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        out.text(": ").untrusted(x.what());
      } catch (...) {
      }
    } else {
      out.text("std::terminate called with no exception");
    }
    write_thread(out);
    out.text("\n\n");
    write_stack_trace(out, 0, 2);  // from std::terminate down
    write_footer(out);
  }
  die_by(SIGABRT);
}

// One alternate signal stack; unmapped when the owning thread ends.
struct alt_stack {
  void* base = nullptr;
  alt_stack() {
    base =
        mmap(nullptr, alt_stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) {
      base = nullptr;
      return;
    }
    stack_t ss{};
    ss.ss_sp = base;
    ss.ss_size = alt_stack_size;
    sigaltstack(&ss, nullptr);
  }
  ~alt_stack() {
    if (base != nullptr) {
      stack_t ss{};
      ss.ss_flags = SS_DISABLE;
      sigaltstack(&ss, nullptr);
      munmap(base, alt_stack_size);
    }
  }
  alt_stack(const alt_stack&) = delete;
  alt_stack& operator=(const alt_stack&) = delete;
};

// The kinds of crash, each in a function of its own so that it shows by name
// in the trace. `volatile` keeps the compiler from proving them away.
__attribute__((noinline)) void crash_by_null_write() {
  volatile int* volatile p = nullptr;
  *p = 1;
}

__attribute__((noinline)) void crash_by_bus_error() {
  const int fd = memfd_create("porthole-crash", 0);  // an empty file...
  const auto* page = static_cast<volatile const char*>(
      mmap(nullptr, 4096, PROT_READ, MAP_SHARED, fd, 0));  // ...mapped a page long
  if (page != MAP_FAILED) {
    (void)page[0];
  }
  raise(SIGBUS);
}

__attribute__((noinline)) void crash_by_illegal_instruction() {
#if defined(__x86_64__) || defined(__i386__)
  asm volatile("ud2");
#elif defined(__aarch64__)
  asm volatile(".inst 0x00000000");  // udf #0
#elif defined(__arm__)
  asm volatile("udf #0");  // ARM or Thumb-2 (Debian armhf builds Thumb-2)
#endif
  raise(SIGILL);
}

__attribute__((noinline)) void crash_by_division_by_zero() {
  volatile int zero = 0;
  volatile int n = 1;
  // Traps on x86; ARM's divide instruction returns 0 instead.
  n = n / zero;
  raise(SIGFPE);
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winfinite-recursion"
__attribute__((noinline)) int crash_by_recursion(int depth) {
  volatile char frame[512];
  frame[0] = static_cast<char>(depth);
  return crash_by_recursion(depth + 1) + frame[0];
}
#pragma GCC diagnostic pop

__attribute__((noinline)) void crash_by_exception(const char* what) {
  throw std::runtime_error(what);
}

}  // namespace

void install_crash_handler(const char* argv0, crash_report_info info) {
  report_info = new crash_report_info(std::move(info));  // lives as long as the process
  absl::InitializeSymbolizer(argv0);
  void* warm_up[2];
  backtrace(warm_up, 2);  // loads the unwinder now, not in a handler
  dl_iterate_phdr(&list_module, nullptr);
  symbolizer_usable = task_maps_describe_this_program();
  prepare_thread_for_crash_reports();
  std::set_terminate(&on_terminate);
  if (sanitizer_owns_signals) {
    return;
  }

  struct sigaction sa {};
  sa.sa_sigaction = &on_fatal_signal;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  for (int signo : fatal_signals) {
    sigaddset(&sa.sa_mask, signo);
  }
  for (int signo : fatal_signals) {
    sigaction(signo, &sa, nullptr);
  }
}

void prepare_thread_for_crash_reports() {
  if (!sanitizer_owns_signals) {
    thread_local alt_stack stack;
  }
}

void guard_terminal(int fd, const termios* saved, std::string_view leave) {
  terminal_fd.store(-1);
  terminal_modes_saved = saved != nullptr;
  if (saved != nullptr) {
    terminal_saved = *saved;
  }
  terminal_leave_size = std::min(leave.size(), sizeof terminal_leave);
  std::memcpy(terminal_leave, leave.data(), terminal_leave_size);
  terminal_fd.store(fd);
}

void release_terminal() {
  terminal_fd.store(-1);
}

bool write_to_terminal(int fd, std::string_view bytes) {
  drawing_thread.store(this_thread());
  frame_in_progress.store(true);
  if (report_begun.load()) {
    frame_in_progress.store(false);
    return false;
  }
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  frame_in_progress.store(false);
  return true;
}

std::optional<crash_kind> crash_kind_from_env() {
  const char* v = std::getenv("PORTHOLE_CRASH");
  if (v == nullptr || *v == '\0') {
    return std::nullopt;
  }
  static constexpr std::pair<std::string_view, crash_kind> kinds[] = {
      {"segv", crash_kind::segv},
      {"bus", crash_kind::bus},
      {"ill", crash_kind::ill},
      {"fpe", crash_kind::fpe},
      {"abort", crash_kind::abort},
      {"stack-overflow", crash_kind::stack_overflow},
      {"exception", crash_kind::exception},
      {"thread-exception", crash_kind::thread_exception},
  };
  std::string names;
  for (const auto& [name, kind] : kinds) {
    if (name == v) {
      return kind;
    }
    names += (names.empty() ? "" : ", ") + std::string(name);
  }
  throw std::invalid_argument("PORTHOLE_CRASH: unknown kind '" + std::string(v) + "' (one of " +
                              names + ")");
}

void crash_now(crash_kind kind) {
  switch (kind) {
    case crash_kind::segv:
      crash_by_null_write();
      break;
    case crash_kind::bus:
      crash_by_bus_error();
      break;
    case crash_kind::ill:
      crash_by_illegal_instruction();
      break;
    case crash_kind::fpe:
      crash_by_division_by_zero();
      break;
    case crash_kind::abort:
      std::abort();
    case crash_kind::stack_overflow:
      crash_by_recursion(0);
      break;
    case crash_kind::exception:
      crash_by_exception("PORTHOLE_CRASH=exception: an exception that nothing catches");
      break;
    case crash_kind::thread_exception:
      std::thread([] {
        pthread_setname_np(pthread_self(), "crash-test");
        crash_by_exception("PORTHOLE_CRASH=thread-exception: an exception that nothing catches");
      }).detach();
      break;
  }
}

}  // namespace porthole::term
