"""Start each latency window with an empty quorum-queue write-ahead log.

Every quorum queue on a node appends to one shared WAL. When it reaches
``raft.wal_max_size_bytes`` (512 MB by default) it rolls over and the segment writer copies
its entries into each queue's segment files; meanwhile deliveries and confirms stall for
about half a second (bench/findings.md: every latency episode over 300 ms in this benchmark's
runs came within a second of one, for the raw relay as for the hub). At the benchmark's loads
that happens every few minutes, so whether a 10-second latency run contains one is chance.
Before each latency run the benchmark rolls the WAL over itself and waits for the flush, as
a database benchmark checkpoints before measuring: the run then measures the hub and the
relay, not where the broker's housekeeping fell. What a rollover costs is reported apart.
"""

from __future__ import annotations

import shutil
import subprocess

# Roll over, then wait (up to 30 s) until the WAL files there were before are flushed and gone.
_ROLL = """
Dir = maps:get(wal_data_dir, ra_system:fetch(quorum_queues)),
Wals = fun() -> {ok, Fs} = file:list_dir(Dir), [F || F <- Fs, filename:extension(F) == ".wal"] end,
Before = Wals(),
ok = ra_log_wal:force_roll_over(ra_log_wal),
Wait = fun W(N) -> case [F || F <- Wals(), lists:member(F, Before)] of
                       [] -> ok; _ when N > 0 -> timer:sleep(100), W(N - 1); _ -> timeout end end,
Wait(300).
"""


def roll_over() -> str | None:
    """Roll the local broker's quorum WAL over and wait for the flush; None, or why not."""
    exe = shutil.which("rabbitmqctl")
    if exe is None:
        return "rabbitmqctl not found: WAL not rolled over before the run"
    try:
        done = subprocess.run(
            [exe, "-q", "eval", _ROLL], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"WAL not rolled over before the run: {exc}"
    if done.returncode != 0 or done.stdout.strip() != "ok":
        why = (done.stdout + done.stderr).strip().splitlines()
        return f"WAL not rolled over before the run: {why[-1] if why else done.returncode}"
    return None
