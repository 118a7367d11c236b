"""RESULTS.md and the plot, from a run's results; the hand-written findings are appended."""

from __future__ import annotations

import contextlib
import os
import platform
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.scenarios import Result

HERE = Path(__file__).parent
SWEEP = "sweep: "  # name prefix of the lower-load latency runs
FINDINGS = HERE / "findings.md"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        import psutil

        mem = f", {psutil.virtual_memory().total / 2**30:.0f} GiB RAM"
    except ImportError:
        pass
    return f"{cpu}, {os.cpu_count()} cores{mem}, {platform.system()} {platform.release()}"


def versions(extra: dict[str, str]) -> str:
    parts = [f"Python {platform.python_version()}"]
    for pkg in ("faststream", "aio-pika", "aiormq", "asyncpg", "pydantic", "orjson"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            parts.append(f"{pkg} {metadata.version(pkg)}")
    parts.extend(f"{k} {v}" for k, v in extra.items())
    return ", ".join(parts)


def _fmt(x: float, digits: int = 0) -> str:
    return f"{x:,.{digits}f}" if x else "-"


def table(results: list[Result], relay: dict[int, float]) -> list[str]:
    rows = [
        "| scenario | fan-out | msgs | in msg/s | out msg/s | ratio to relay (out) "
        "| p50 ms | p99 ms | p99.9 ms | RSS start / end / peak MB | box busy / stolen % | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.skipped:
            rows.append(f"| {r.name} | {r.fanout} | - | - | - | - | - | - | - | - | - | {r.note} |")
            continue
        ratio = "-"
        if not r.latency_ms and r.fanout in relay and relay[r.fanout] and "relay" not in r.name:
            ratio = f"{r.out_per_s / relay[r.fanout]:.2f}x"
        lat = r.latency_ms
        rows.append(
            f"| {r.name} | {r.fanout} | {r.messages} | {_fmt(r.in_per_s)} | {_fmt(r.out_per_s)} "
            f"| {ratio} | {_fmt(lat.get('p50', 0), 1)} | {_fmt(lat.get('p99', 0), 1)} "
            f"| {_fmt(lat.get('p99.9', 0), 1)} "
            f"| {_fmt(r.rss_start_mb)} / {_fmt(r.rss_end_mb)} / {_fmt(r.rss_peak_mb)} "
            f"| {r.box_busy_pct:.0f} / {r.box_stolen_pct:.0f} | {r.note} |"
        )
    return rows


def plot(results: list[Result], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(17, 4.5))
    for r in results:
        if r.latencies and not r.name.startswith(SWEEP):
            s = sorted(r.latencies)
            n = len(s)
            left.plot(s, [(i + 1) / n for i in range(n)], label=f"{r.name} @ {r.rate:.0f}/s")
    left.set_xscale("log")
    left.set_xlabel("latency, ms (log)")
    left.set_ylabel("fraction of messages")
    left.axvline(50, color="grey", linestyle=":", label="target p99 50 ms")
    left.set_title("open-loop latency at 50% of max (CDF)")
    left.legend(fontsize=7)
    sweep: dict[str, list[tuple[float, float, float]]] = {}
    for r in results:
        if r.name.startswith(SWEEP) and r.latency_ms:
            label = "raw relay" if "relay" in r.name else "hub stock.level -> availability"
            sweep.setdefault(label, []).append((r.rate, r.latency_ms["p50"], r.latency_ms["p99"]))
    for i, (label, pts) in enumerate(sweep.items()):
        pts.sort()
        rates = [p[0] for p in pts]
        middle.plot(rates, [p[2] for p in pts], marker="o", color=f"C{i}", label=f"{label} p99")
        middle.plot(
            rates, [p[1] for p in pts], marker=".", ls="--", color=f"C{i}", label=f"{label} p50"
        )
    middle.axhline(50, color="grey", linestyle=":", label="target p99 50 ms")
    middle.set_yscale("log")
    middle.set_xlabel("offered rate, msg/s")
    middle.set_ylabel("latency, ms (log)")
    middle.set_title("latency against the offered rate")
    middle.legend(fontsize=7)
    series: dict[str, list[tuple[int, float]]] = {}
    for r in results:
        if r.latencies or r.latency_ms or r.skipped or not r.out_per_s:
            continue
        label = "raw relay" if "relay" in r.name else r.name.split(" N=")[0]
        series.setdefault(label, []).append((r.fanout, r.out_per_s))
    for label, pts in series.items():
        pts.sort()
        right.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
    right.set_xlabel("fan-out (output queues per input message)")
    right.set_ylabel("output messages / s")
    right.set_title("throughput against fan-out")
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def stamp() -> str:
    """The time a benchmark ran, as RESULTS.md shows it."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def write(
    results: list[Result],
    extra_versions: dict[str, str],
    conditions: str,
    settings: dict[str, Any],
    out_dir: Path = HERE,
    run_at: str | None = None,
) -> Path:
    """``run_at``: when the benchmark ran (a re-render keeps it); now, by default."""
    relay = {
        r.fanout: r.out_per_s
        for r in results
        if r.name.startswith("raw relay") and not r.skipped and not r.latency_ms
    }
    plot(results, out_dir / "results.png")
    now = run_at or stamp()
    lines = [
        "# Benchmark results",
        "",
        "Generated by `python -m bench.run` (`make bench`); the findings below the table are",
        "written by hand in `bench/findings.md`.",
        "",
        f"- date: {now}",
        f"- machine: {machine()}",
        f"- versions: {versions(extra_versions)}",
        f"- hub settings: {', '.join(f'{k}={v}' for k, v in settings.items())}",
        f"- conditions: {conditions}",
        "",
        "Throughput: a queue preloaded with the messages is drained by the process under test;",
        "the rate is measured between 10% and 90% of the outputs arriving (start-up and tail",
        "excluded). Latency: open loop, sent on a fixed schedule at 50% of the measured maximum,",
        "measured from the scheduled send time to receipt on the channel queue (first second",
        "excluded as warm-up). Rows named `sweep:` repeat the relay and the stock path at the",
        "same rates, lower loads (10%, 25% and 35% of the hub's stock maximum). RSS of the",
        "process under test (psutil, every 100 ms). Box busy / stolen: the share of all cores'",
        "time the machine was busy during the row, and the share the",
        "hypervisor gave to other guests (steal): on a shared VM, the second is queueing no",
        "code here can remove. The load generator is two processes of its own speaking raw",
        "AMQP (`bench/sender.py`, `bench/receiver.py`): it shares the box with what it",
        "measures. The note of a latency row says how far behind its schedule it got its sends",
        "out (p99, max); a late send still counts from its scheduled time. Before each latency",
        "row the broker's quorum-queue WAL is rolled over and flushed (`bench/wal.py`, as a",
        "database benchmark checkpoints first): a rollover stalls the broker for about half a",
        "second, for the relay as for the hub, and whether a 10 s window holds one is chance;",
        "what a rollover costs is in the findings. A row says so if the roll-over could not be",
        "done.",
        "",
        *table(results, relay),
        "",
        "![latency and throughput](results.png)",
        "",
    ]
    if FINDINGS.exists():
        lines.append(FINDINGS.read_text(encoding="utf-8"))
    path = out_dir / "RESULTS.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
