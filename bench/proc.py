"""Subprocesses under test (the hub, the relay) with their RSS sampled by psutil."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

HUB_BIN = Path(sys.executable).parent / "hub"


class RssSampler(threading.Thread):
    """Samples a process's resident set size every ``dt`` seconds until stopped."""

    def __init__(self, pid: int, dt: float = 0.1) -> None:
        super().__init__(daemon=True)
        self._proc = psutil.Process(pid)
        self._dt = dt
        self._stop_evt = threading.Event()
        self.samples: list[tuple[float, int]] = []

    def run(self) -> None:
        while not self._stop_evt.is_set():
            try:
                self.samples.append((time.perf_counter(), self._proc.memory_info().rss))
            except psutil.Error:
                return
            self._stop_evt.wait(self._dt)

    def stop(self) -> None:
        self._stop_evt.set()
        self.join(timeout=2)

    def peak(self, since: float = 0.0, until: float = float("inf")) -> int:
        vals = [r for t, r in self.samples if since <= t <= until]
        return max(vals) if vals else 0

    def at(self, t: float) -> int:
        """The last sample taken at or before ``t``."""
        best = 0
        for ts, r in self.samples:
            if ts > t:
                break
            best = r
        return best


class BoxLoad:
    """How busy the whole machine was between two readings, and how much the host stole.

    On a shared VM, stolen time is CPU the guest wanted and did not get: it shows up as
    queueing in every latency figure, the hub's and the relay's alike.
    """

    def __init__(self) -> None:
        self._start = psutil.cpu_times()

    def read(self) -> tuple[float, float]:
        """(busy %, stolen %) of all cores since this object was made."""
        end = psutil.cpu_times()
        delta = {f: getattr(end, f) - getattr(self._start, f) for f in end._fields}
        total = sum(delta.values()) or 1.0
        idle = delta.get("idle", 0.0) + delta.get("iowait", 0.0)
        steal = delta.get("steal", 0.0)
        return 100 * (total - idle - steal) / total, 100 * steal / total


class Child:
    """A process under test; its output goes to a log file shown when it fails."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the child
            prefix="hub-bench-", suffix=".log", delete=False
        )
        self.popen = subprocess.Popen(
            argv, env=env or dict(os.environ), stdout=self.log, stderr=subprocess.STDOUT
        )
        self.rss = RssSampler(self.popen.pid)
        self.rss.start()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self, tail: int = 4000) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-tail:]

    def stop(self, timeout: float = 30.0) -> int:
        self.rss.stop()
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.log.close()
        os.unlink(self.log.name)
        return self.popen.returncode


def start_hub(env: dict[str, str]) -> Child:
    return Child([str(HUB_BIN), "run"], env)


def start_relay(source: str, outputs: list[str], prefetch: int) -> Child:
    return Child(
        [
            sys.executable,
            "-m",
            "bench.relay",
            "--in",
            source,
            "--out",
            ",".join(outputs),
            "--prefetch",
            str(prefetch),
        ]
    )


def py_spy(pid: int, out: Path, seconds: int) -> subprocess.Popen[bytes] | None:
    """Record a flame graph of ``pid`` (needs ptrace permission); None when py-spy is missing."""
    exe = Path(sys.executable).parent / "py-spy"
    if not exe.exists():
        return None
    fmt = ["--format", "raw"] if out.suffix == ".txt" else []
    return subprocess.Popen(
        [str(exe), "record", "-o", str(out), "--pid", str(pid), "-d", str(seconds), *fmt],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
