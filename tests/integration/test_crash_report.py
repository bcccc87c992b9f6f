"""A crash of the client: the terminal is put back, then a stack trace and how
to report the bug are printed, and the exit status is not zero.

Crashes are caused with the hidden PORTHOLE_CRASH=<kind> hook, which crashes
the client on its network thread (or, for thread-exception, on a thread of its
own) as the first public connection arrives."""

from __future__ import annotations

import os
import re
import signal

import pytest

import harness
from harness import curl
from terminal import Terminal
from test_status_screen import porthole, version

# kind -> (the signal the process dies of, the report's first line, a frame the
# trace must show)
KINDS = {
    "segv": (signal.SIGSEGV, r"SIGSEGV \(invalid memory access\) at address 0x0",
             "crash_by_null_write"),
    "bus": (signal.SIGBUS, r"SIGBUS \(bus error: .*\) at address 0x[0-9a-f]+",
            "crash_by_bus_error"),
    "ill": (signal.SIGILL, r"SIGILL \(illegal instruction\)", "crash_by_illegal_instruction"),
    "fpe": (signal.SIGFPE, r"SIGFPE \(arithmetic error\)", "crash_by_division_by_zero"),
    "abort": (signal.SIGABRT, r"SIGABRT \(aborted\)", "crash_now"),
    "stack-overflow": (signal.SIGSEGV, r"SIGSEGV \(invalid memory access\) at address",
                       "crash_by_recursion"),
    "exception": (signal.SIGABRT,
                  r"an exception nothing caught, std::runtime_error: PORTHOLE_CRASH=exception",
                  "crash_by_exception"),
    "thread-exception": (signal.SIGABRT,
                         r"an exception nothing caught, std::runtime_error: "
                         r"PORTHOLE_CRASH=thread-exception: .*\(crash-test\)",
                         "crash_by_exception"),
}


def skip_if_a_sanitizer_has_the_signals(signo: signal.Signals) -> None:
    """In a build with a sanitizer (make test-asan, make test-tsan) porthole
    leaves the fatal signals to the sanitizer, which reports them itself
    (src/term/crash.cpp): there only its reports of uncaught exceptions, which
    end with SIGABRT of its own, can be tested."""
    if harness.sanitizer() is not None:
        pytest.skip(f"built with the {harness.sanitizer()} sanitizer, whose handler of "
                    f"{signo.name} replaces porthole's crash report")


def check_report(text: str, kind: str) -> None:
    _, first_line, frame = KINDS[kind]
    v = re.escape(version())
    # The report's lines may be wrapped by the terminal: compare them unwrapped.
    flat = re.sub(r"\s+", " ", text)
    assert re.search(rf"porthole {v} crashed: {first_line}", flat), text
    assert "Stack trace (most recent call first):" in text, text
    frames = re.findall(r"^ +#(\d+) +0x[0-9a-f]+ +(\S.*)$", text, re.M)
    assert [int(n) for n, _ in frames] == list(range(len(frames)))
    if harness.emulated("porthole"):
        # Under qemu-user (docs/CROSS.md) the frames are offsets into the
        # program, without names; with qemu-arm the unwinder does not get
        # through qemu's signal frame, and the report's alarm ends the trace.
        if "(the stack trace did not finish within 10 s)" not in text:
            assert len(frames) >= 3, text
            assert any(re.search(r"porthole\+0x[0-9a-f]+", f) for _, f in frames), text
    else:
        assert len(frames) >= 3, text
        assert any(frame in f for _, f in frames), f"no frame of {frame} in:\n{text}"
        if kind not in ("thread-exception", "stack-overflow"):  # whose traces end elsewhere
            assert any(re.search(r"\bmain\b", f) for _, f in frames), text
    assert re.search(r"This is a bug in porthole, not something you did\. Please report it at "
                     r"https?://\S+ and include: .*this whole report, from \"porthole " + v +
                     r" crashed\" to here;", flat), text


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_crash_puts_the_terminal_back_and_prints_the_report(kind, server, http_backend,
                                                               tmp_path, home):
    if kind not in ("exception", "thread-exception"):
        skip_if_a_sanitizer_has_the_signals(KINDS[kind][0])
    term = Terminal(tmp_path / "term", home, cols=120, rows=40)
    argv = ["env", f"PORTHOLE_CRASH={kind}",
            *porthole(server, "--threads", "1", "http", str(http_backend.port), "--subdomain",
                      "crash")]
    # (One thread, as below.)
    term.run_and_record(argv, "run")
    term.wait_for(r"^Tunnel Status +online")
    term.wait_for(r"^Forwarding +https?://crash\.")
    # The public request that makes it crash gets no answer from the client.
    curl(f"http://crash.localhost:{server.http_port}/hello", timeout=20)

    status = term.wait_exit("run")
    signo = KINDS[kind][0]
    assert status == 128 + signo, term.history()
    assert not term.alternate_on(), "the alternate screen is still on"
    assert term.modes_changed("run") == "", "the terminal's modes changed"
    text = term.history()
    assert "Tunnel Status" not in text, "the status screen was drawn on the shell's screen"
    check_report(text, kind)


def test_without_a_terminal_the_report_goes_to_stderr_plain(server, http_backend, home):
    skip_if_a_sanitizer_has_the_signals(signal.SIGSEGV)
    # One thread: the crash, posted as the first connection is counted, runs
    # before the answer could (with more, the connection may be on another).
    proc = harness.Process(porthole(server, "--threads", "1", "http", str(http_backend.port),
                                    "--subdomain", "crash-pipe", "--proto", "http"),
                           name="porthole",
                           env=harness.clean_env(home, {"PORTHOLE_CRASH": "segv",
                                                        "TERM": "xterm-256color"}))
    proc.wait_for(r"Forwarding http://crash-pipe\.")
    r = curl(f"http://crash-pipe.localhost:{server.http_port}/hello", timeout=20)
    assert r.status in (0, 502), r  # a closed connection, or the server's error page
    assert proc.wait_exit() == -signal.SIGSEGV
    err = proc.text("stderr")
    check_report(err, "segv")
    assert "\x1b" not in proc.text(), repr(proc.text())


def test_an_unknown_crash_kind_is_refused_by_name(server, home):
    proc = harness.Process(porthole(server, "http", "8080"), name="porthole",
                           env=harness.clean_env(home, {"PORTHOLE_CRASH": "nonsense"}))
    assert proc.wait_exit() == 1
    err = proc.text("stderr")
    assert "PORTHOLE_CRASH: unknown kind 'nonsense'" in err and "segv" in err, err


def test_the_server_prints_a_report_too(start_portholed, tmp_path, home):
    """portholed has the same handler: SIGSEGV gives a trace on its stderr."""
    skip_if_a_sanitizer_has_the_signals(signal.SIGSEGV)
    server = start_portholed()
    server.proc.popen.send_signal(signal.SIGSEGV)
    assert server.proc.wait_exit() == -signal.SIGSEGV
    err = server.proc.text("stderr")
    assert re.search(r"portholed \S+ crashed: SIGSEGV \(invalid memory access\), sent by "
                     rf"process {os.getpid()}, in thread \d+", err), err
    assert "Stack trace (most recent call first):" in err
    assert "This is a bug in portholed" in err
