"""A real terminal for porthole's integration tests: a private tmux server
running a plain bash, driven with send-keys and read with capture-pane.

A test types command lines into the shell as a person would and waits (with a
deadline) for text to appear on the screen.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import time
from pathlib import Path

from harness import WaitTimeout, clean_env, register, require_program, scaled

PROMPT = "porthole-test$ "


class Terminal:
    """A tmux pane of `cols` x `rows` running bash, with its own tmux server
    (socket in `workdir`), so tests never touch a user's tmux sessions."""

    def __init__(self, workdir: Path, home: Path, cols: int = 100, rows: int = 30,
                 env: dict[str, str | None] | None = None, name: str = "terminal"):
        self.name = name
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.socket = self.workdir / "tmux.sock"
        self._tmux = str(require_program("tmux"))
        self._last_screen = ""
        self._final_history = ""
        shell_env = clean_env(home, env)
        shell_env.pop("TMUX", None)
        # bash resets PS1 from the environment as root: set it on the command line.
        self._run("-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", str(cols),
                  "-y", str(rows), f"PS1={shlex.quote(PROMPT)} exec bash --norc --noprofile",
                  env=shell_env)
        # Nothing else is drawn on the pane: no tmux status line.
        self._run("set-option", "-t", "t", "status", "off")
        register(self)
        self.wait_for(re.escape(PROMPT.strip()))

    def _run(self, *args: str, env: dict[str, str] | None = None) -> str:
        p = subprocess.run([self._tmux, "-S", str(self.socket), *args], capture_output=True,
                           text=True, env=env, timeout=15)
        if p.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)} failed: {p.stderr.strip()}")
        return p.stdout

    # -- input ------------------------------------------------------------------

    def type_line(self, line: str) -> None:
        """Types `line` (literally) and Enter."""
        self._run("send-keys", "-t", "t", "-l", line)
        self._run("send-keys", "-t", "t", "Enter")

    def press(self, *keys: str) -> None:
        """tmux key names: "q", "C-c", "Enter"."""
        self._run("send-keys", "-t", "t", *keys)

    def resize(self, cols: int, rows: int) -> None:
        self._run("resize-window", "-t", "t", "-x", str(cols), "-y", str(rows))

    # -- output -----------------------------------------------------------------

    def screen(self, escapes: bool = False) -> str:
        """What the pane shows now (with -e, its colour sequences too)."""
        text = self._run("capture-pane", "-p", "-t", "t", *(["-e"] if escapes else []))
        self._last_screen = text
        return text

    def history(self) -> str:
        """What the pane shows now with the scrollback above it."""
        return self._run("capture-pane", "-p", "-t", "t", "-S", "-")

    def alternate_on(self) -> bool:
        return self._run("display-message", "-p", "-t", "t", "#{alternate_on}").strip() == "1"

    def size(self) -> tuple[int, int]:
        cols, rows = self._run("display-message", "-p", "-t", "t",
                               "#{pane_width} #{pane_height}").split()
        return int(cols), int(rows)

    def wait_for(self, pattern: str, timeout: float = 20.0, history: bool = False) -> re.Match:
        """Waits until the screen (or, with history, the normal screen and its
        scrollback) matches `pattern` (re.search, multiline)."""
        rx = re.compile(pattern, re.MULTILINE)
        timeout = scaled(timeout)
        deadline = time.monotonic() + timeout
        while True:
            text = self.history() if history else self.screen()
            m = rx.search(text)
            if m:
                return m
            if time.monotonic() >= deadline:
                raise WaitTimeout(f"the terminal did not show /{pattern}/ within {timeout:g}s; "
                                  f"it shows:\n{text}")
            time.sleep(0.05)

    # -- the shell ----------------------------------------------------------------

    def run_and_record(self, argv: list, tag: str, stdin: str | None = None) -> None:
        """Types a command line that saves `stty -a` before and after running
        argv (its stdin from the file `stdin`, if given), and prints
        `<tag>-EXIT=<status>` when argv ends."""
        cmd = " ".join(shlex.quote(str(a)) for a in argv)
        if stdin is not None:
            cmd += f" < {shlex.quote(stdin)}"
        before, after = self.stty_file(tag, "before"), self.stty_file(tag, "after")
        self.type_line(f"clear; stty -a > {before}; {cmd}; echo {tag}-EXIT=$?; "
                       f"stty -a > {after}")

    def stty_file(self, tag: str, when: str) -> Path:
        return self.workdir / f"stty-{tag}-{when}.txt"

    def wait_exit(self, tag: str, timeout: float = 20.0) -> int:
        """The exit status of the command run_and_record started, once the
        shell printed it and saved the terminal's modes after it."""
        m = self.wait_for(rf"^{re.escape(tag)}-EXIT=(\d+)\s*$", timeout, history=True)
        after = self.stty_file(tag, "after")
        deadline = time.monotonic() + scaled(timeout)
        while not (after.exists() and after.stat().st_size > 0):
            if time.monotonic() >= deadline:
                raise WaitTimeout(f"the shell did not save `stty -a` after {tag}")
            time.sleep(0.05)
        self.wait_for(re.escape(PROMPT.strip()) + r"\s*$", timeout, history=True)
        return int(m[1])

    def modes_changed(self, tag: str) -> str:
        """'' when `stty -a` after the command equals what it was before; else both."""
        before = self.stty_file(tag, "before").read_text()
        after = self.stty_file(tag, "after").read_text()
        return "" if before == after else f"before:\n{before}\nafter:\n{after}"

    # -- the registry (harness.stop_all, failure reports) --------------------------

    def log_text(self) -> str:
        try:
            return f"the screen:\n{self.screen()}\nthe scrollback:\n{self.history()}"
        except Exception as e:  # the server may be gone
            return f"(tmux gone: {e!r}); the last screen read:\n{self._last_screen}"

    def final_output(self) -> str:
        """The scrollback as it was when stopped (for sanitizer reports)."""
        return self._final_history

    def stop(self) -> None:
        try:
            self._final_history = self.history()
        except Exception:  # tmux gone already
            pass
        subprocess.run([self._tmux, "-S", str(self.socket), "kill-server"],
                       capture_output=True, timeout=15)
