// The run-time options of porthole's sanitized builds (PORTHOLE_SANITIZE, `make
// test-asan`, `make test-tsan`), linked into every program and test of such a
// build so that they apply however it is run. The sanitizers call these
// functions at start-up; ASAN_OPTIONS, UBSAN_OPTIONS, LSAN_OPTIONS and
// TSAN_OPTIONS still override them (the integration tests add log_path, see
// tests/integration/conftest.py). Each option's reason is beside it.

extern "C" {

#if defined(__SANITIZE_ADDRESS__)

const char* __asan_default_options() {
  return
      // The first error ends the program with a non-zero status: a test fails.
      "halt_on_error=1:exitcode=1:abort_on_error=0"
      // LeakSanitizer runs at exit: a leak fails the program too.
      ":detect_leaks=1"
      // A coroutine's stack frame used after it returned.
      ":detect_stack_use_after_return=1"
      // A global initialised from another file's global not yet initialised.
      ":check_initialization_order=1:strict_init_order=1"
      // str*() reading past a missing terminator.
      ":strict_string_checks=1";
}

const char* __ubsan_default_options() {
  // The build has -fno-sanitize-recover=all: undefined behaviour is fatal.
  return "halt_on_error=1:print_stacktrace=1";
}

const char* __lsan_default_options() {
  return "suppressions=" PORTHOLE_SANITIZER_DIR "/lsan.supp";
}

#endif

#if defined(__SANITIZE_THREAD__)

const char* __tsan_default_options() {
  return
      // The first race ends the program (status 66): a test fails.
      "halt_on_error=1"
      // A lock-order inversion shows where both locks were taken.
      ":second_deadlock_stack=1"
      // More of each thread's past accesses, so both sides of a race show.
      ":history_size=4"
      ":suppressions=" PORTHOLE_SANITIZER_DIR "/tsan.supp";
}

#endif

}  // extern "C"
