"""A network namespace joined to this one by an emulated link, for the fault tests.

This kernel has no netem qdisc, so delay, loss and outages are made in user
space: two TUN devices, one here and one in the namespace, with a process
between them (this file, run as a script) that moves every IP packet from one
to the other, after a delay, unless it drops it. TCP on either side sees a
real lossy, slow link: it retransmits, its window shrinks, its heartbeats go
unanswered while the link drops everything.

    with Namespace() as ns, Link(ns, delay_ms=100, loss=0.01) as link:
        # here: link.root_addr; in the namespace: link.ns_addr
        link.drop_all(); ...; link.restore()

Processes start in the namespace with ns.argv(...) (`ip netns exec`); sockets
of this process are made there inside `with in_netns(ns.name):` (the calling
thread only; a socket stays in the namespace it was made in).

Needs root, `ip netns` and /dev/net/tun: see skip_reason().
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import fcntl
import itertools
import os
import random
import select
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000

_libc = ctypes.CDLL(None, use_errno=True)


def skip_reason() -> str | None:
    """Why the namespace tests cannot run here, or None if they can."""
    if os.geteuid() != 0:
        return "needs root (network namespaces and TUN devices)"
    if not Path("/dev/net/tun").exists():
        return "needs /dev/net/tun"
    try:
        p = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"needs the ip command (iproute2): {e}"
    if p.returncode != 0:
        return f"`ip netns` does not work here: {p.stderr.strip()}"
    return None


def _run(*argv: str) -> None:
    p = subprocess.run(list(argv), capture_output=True, text=True, timeout=20)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {p.stderr.strip()}")


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextlib.contextmanager
def in_netns(name: str):
    """Runs the body with the calling thread in namespace `name`."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(target)
        os.close(home)


_counter = itertools.count(1)


class Namespace:
    """A network namespace of its own, with loopback up; deleted by stop()."""

    def __init__(self, prefix: str = "ph"):
        self.name = f"{prefix}{os.getpid()}-{next(_counter)}"
        _run("ip", "netns", "add", self.name)
        try:
            _run("ip", "-n", self.name, "link", "set", "lo", "up")
        except Exception:
            self.stop()
            raise

    def argv(self, *argv) -> list[str]:
        """A command line that runs argv in the namespace (same pid: ip execs it)."""
        return ["ip", "netns", "exec", self.name, *[str(a) for a in argv]]

    def stop(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=20)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _free_subnet() -> int:
    """A third octet x for 10.234.x.0/30 that no interface uses yet."""
    used = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True).stdout
    for _ in range(1000):
        x = random.randrange(0, 256)
        if f"10.234.{x}." not in used:
            return x
    raise RuntimeError("no free 10.234.x.0/30 subnet")


class Link:
    """A point-to-point IPv4 link between this namespace (root_addr) and `ns`
    (ns_addr), through the emulator process. delay_ms and loss apply to each
    direction: delay_ms=100 makes a 200 ms round trip."""

    name = "linkemu"

    def __init__(self, ns: Namespace, delay_ms: float = 0.0, loss: float = 0.0,
                 mtu: int = 1500):
        x = _free_subnet()
        self.root_addr = f"10.234.{x}.1"
        self.ns_addr = f"10.234.{x}.2"
        n = next(_counter)
        self.root_dev = f"phr{os.getpid() % 10000}x{n}"[:15]
        self.ns_dev = f"phn{os.getpid() % 10000}x{n}"[:15]
        self.ns = ns
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--ns", ns.name, "--root-dev", self.root_dev,
             "--ns-dev", self.ns_dev, "--delay-ms", str(delay_ms), "--loss", str(loss)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            bufsize=1)
        self._lock = threading.Lock()
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            self.proc.kill()
            raise RuntimeError(f"link emulator did not start: {line!r} {self.proc.stderr.read()}")
        try:
            _run("ip", "addr", "add", f"{self.root_addr}/30", "dev", self.root_dev)
            _run("ip", "link", "set", self.root_dev, "mtu", str(mtu), "up")
            _run("ip", "-n", ns.name, "addr", "add", f"{self.ns_addr}/30", "dev", self.ns_dev)
            _run("ip", "-n", ns.name, "link", "set", self.ns_dev, "mtu", str(mtu), "up")
        except Exception:
            self.stop()
            raise

    def _command(self, text: str) -> str:
        with self._lock:
            self.proc.stdin.write(text + "\n")
            self.proc.stdin.flush()
            answer = self.proc.stdout.readline().strip()
        if not answer.startswith("ok"):
            raise RuntimeError(f"link emulator: {text!r} -> {answer!r}")
        return answer[2:].strip()

    def drop_all(self) -> None:
        """Every packet, both ways, is dropped from now until restore()."""
        self._command("drop")

    def restore(self) -> None:
        self._command("pass")

    def set(self, delay_ms: float | None = None, loss: float | None = None) -> None:
        if delay_ms is not None:
            self._command(f"delay {delay_ms}")
        if loss is not None:
            self._command(f"loss {loss}")

    def stats(self) -> dict[str, int]:
        """Packets seen, dropped (lost, outage, queue full) and delivered."""
        return {k: int(v) for k, v in (kv.split("=") for kv in self._command("stats").split())}

    def log_text(self) -> str:
        state = "running" if self.proc.poll() is None else f"exited {self.proc.returncode}"
        try:
            stats = self.stats() if self.proc.poll() is None else {}
        except Exception as e:
            stats = {"error": repr(e)}
        return (f"{self.root_dev} {self.root_addr} <-> {self.ns.name}/{self.ns_dev} "
                f"{self.ns_addr} ({state}) {stats}\n")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        # The devices go with the process that holds them (they are not persistent).

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# --------------------------------------------------------------------------
# The emulator process
# --------------------------------------------------------------------------

def _open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def _serve(args) -> None:
    root_fd = _open_tun(args.root_dev)
    with in_netns(args.ns):
        ns_fd = _open_tun(args.ns_dev)
    delay = args.delay_ms / 1000.0
    loss = args.loss
    dropping = False
    limit = 10000  # packets queued per direction (netem's default is 1000)
    rng = random.Random()
    # Per direction: (due time, packet), in order (one delay for all).
    queues = {root_fd: collections.deque(), ns_fd: collections.deque()}
    peer = {root_fd: ns_fd, ns_fd: root_fd}
    stats = collections.Counter()
    os.set_blocking(0, False)
    pending = b""
    print("ready", flush=True)

    def answer(text: str) -> None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    while True:
        now = time.monotonic()
        heads = [q[0][0] for q in queues.values() if q]
        timeout = max(0.0, min(heads) - now) if heads else None
        readable, _, _ = select.select([root_fd, ns_fd, 0], [], [], timeout)
        for fd in readable:
            if fd == 0:
                data = os.read(0, 4096)
                if not data:
                    return  # the test closed our stdin: done
                pending += data
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    cmd, *rest = line.decode().split()
                    if cmd == "drop":
                        dropping = True
                        # What was in flight is lost with the link.
                        for q in queues.values():
                            stats["dropped"] += len(q)
                            q.clear()
                        answer("ok")
                    elif cmd == "pass":
                        dropping = False
                        answer("ok")
                    elif cmd == "delay":
                        delay = float(rest[0]) / 1000.0
                        answer("ok")
                    elif cmd == "loss":
                        loss = float(rest[0])
                        answer("ok")
                    elif cmd == "stats":
                        answer("ok " + " ".join(f"{k}={stats[k]}" for k in
                                                ("seen", "dropped", "lost", "delivered")))
                    else:
                        answer(f"error: unknown command {cmd}")
                continue
            for _ in range(256):
                try:
                    packet = os.read(fd, 65536)
                except BlockingIOError:
                    break
                stats["seen"] += 1
                if dropping or len(queues[fd]) >= limit:
                    stats["dropped"] += 1
                elif loss > 0 and rng.random() < loss:
                    stats["lost"] += 1
                else:
                    queues[fd].append((time.monotonic() + delay, packet))
        now = time.monotonic()
        for fd, q in queues.items():
            while q and q[0][0] <= now:
                _, packet = q.popleft()
                try:
                    os.write(peer[fd], packet)
                    stats["delivered"] += 1
                except OSError:
                    stats["dropped"] += 1


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ns", required=True)
    parser.add_argument("--root-dev", required=True)
    parser.add_argument("--ns-dev", required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--loss", type=float, default=0.0)
    _serve(parser.parse_args())
