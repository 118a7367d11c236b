"""The measurements: drain throughput of a preloaded queue, open-loop latency, memory."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import orjson

from bench import messages, wal
from bench.env import BROKER_URL, Counter, Env, preload, purge, queue_count
from bench.proc import Child, py_spy, start_hub, start_relay

MB = 1024 * 1024


@dataclass
class Result:
    """One row of the results table."""

    name: str
    fanout: int
    messages: int
    expected_out: int
    delivered_out: int = 0
    in_per_s: float = 0.0
    out_per_s: float = 0.0
    seconds: float = 0.0
    rss_start_mb: float = 0.0
    rss_end_mb: float = 0.0
    rss_peak_mb: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list, repr=False)
    rate: float = 0.0
    note: str = ""
    skipped: bool = False
    box_busy_pct: float = 0.0  # the whole machine, all cores, while the scenario ran
    box_stolen_pct: float = 0.0  # CPU time the hypervisor gave to other guests
    per_queue_p99_ms: dict[str, float] = field(default_factory=dict)  # fan-out latency rows
    sender_lag_ms: dict[str, float] = field(default_factory=dict)  # after the warm-up
    measured: int = 0  # latency rows: the messages sent after the warm-up, each timed

    def public(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d.pop("latencies")
        return d


async def wait_for(
    counter: Counter, expected: int, timeout: float, stall: float = 5.0, dt: float = 0.05
) -> list[tuple[float, int]]:
    """Sample (time, count) until ``expected`` arrived, ``timeout`` passed or nothing moved."""
    samples: list[tuple[float, int]] = []
    start = last_change = time.perf_counter()
    last = -1
    while True:
        n = await counter.total()
        now = time.perf_counter()
        samples.append((now, n))
        if n != last:
            last, last_change = n, now
        if n >= expected or now - start > timeout:
            return samples
        if n > 0 and now - last_change > stall:
            return samples
        await asyncio.sleep(dt)


def steady_rate(samples: list[tuple[float, int]]) -> tuple[float, float, float, int]:
    """Rate between 10% and 90% of what arrived (start-up and tail excluded): rate, t10, t90, n."""
    final = samples[-1][1]
    if final == 0:
        return 0.0, 0.0, 0.0, 0
    lo = next(s for s in samples if s[1] >= 0.1 * final)
    hi = next(s for s in samples if s[1] >= 0.9 * final)
    if hi[0] <= lo[0]:
        return 0.0, lo[0], hi[0], final
    return (hi[1] - lo[1]) / (hi[0] - lo[0]), lo[0], hi[0], final


def _fill(result: Result, samples: list[tuple[float, int]], child: Child) -> None:
    rate, t10, _t90, final = steady_rate(samples)
    result.delivered_out = final
    result.out_per_s = rate
    result.in_per_s = rate / max(1, result.fanout)
    first = next((t for t, n in samples if n > 0), samples[0][0])
    result.seconds = samples[-1][0] - first
    result.rss_start_mb = child.rss.at(t10) / MB
    result.rss_end_mb = child.rss.at(samples[-1][0]) / MB
    result.rss_peak_mb = child.rss.peak() / MB
    if final < result.expected_out:
        result.note = (result.note + f" only {final}/{result.expected_out} arrived").strip()


async def _declare_relay_queues(conn: aio_pika.abc.AbstractConnection, names: list[str]) -> None:
    ch = await conn.channel()
    for name in names:
        await ch.declare_queue(
            name,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": 10,
                "x-overflow": "reject-publish",
            },
        )
    await ch.close()


async def _delete_queues(names: list[str]) -> None:
    fresh = await aio_pika.connect(BROKER_URL)  # the run's connection may have died
    try:
        ch = await fresh.channel()
        for name in names:
            await ch.queue_delete(name)
    finally:
        await fresh.close()


async def relay_latency(
    conn: aio_pika.abc.AbstractConnection, run: str, rate: float, duration: float, prefetch: int
) -> Result:
    """The raw relay's latency at the same open-loop rate: the floor the broker and box set."""
    base = f"bench{run}.relaylat"
    source, out = f"{base}.in", f"{base}.out.0"
    await _declare_relay_queues(conn, [source, out])
    env = Env(1)

    def make(i: int) -> tuple[str, bytes, str]:
        body = messages.product(run + "-rl", i)
        return source, body, orjson.loads(body)["id"]

    try:
        child = start_relay(source, [out], prefetch)
        try:
            await asyncio.sleep(1.0)  # consuming
            return await open_loop_latency(
                conn,
                env,
                "latency raw relay",
                make,
                out,
                rate,
                duration,
                child=child,
                exchange_name="",
            )
        finally:
            child.stop()
    finally:
        await _delete_queues([source, out])


async def relay_throughput(
    conn: aio_pika.abc.AbstractConnection,
    run: str,
    fanout: int,
    count: int,
    prefetch: int,
    timeout: float,
) -> Result:
    """(1) the raw aio-pika relay draining ``count`` preloaded messages to ``fanout`` queues."""
    base = f"bench{run}.relay{fanout}"
    source, outs = f"{base}.in", [f"{base}.out.{k}" for k in range(fanout)]
    await _declare_relay_queues(conn, [source, *outs])
    result = Result(f"raw relay (prefetch {prefetch})", fanout, count, count * fanout)
    try:
        await preload(conn, "", [(source, messages.product(run, i)) for i in range(count)])
        child = start_relay(source, outs, prefetch)
        counter = Counter(conn, outs)
        try:
            samples = await wait_for(counter, result.expected_out, timeout)
            _fill(result, samples, child)
        finally:
            await counter.close()
            child.stop()
    finally:
        await _delete_queues([source, *outs])
    return result


Setup = Callable[[aio_pika.abc.AbstractConnection, Env], Any]


async def _wait_drained(conn: aio_pika.abc.AbstractConnection, env: Env, settle: float) -> None:
    for _ in range(600):
        ready, _consumers = await queue_count(conn, env.names.inbound_queue)
        if ready == 0:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(settle)


async def _wait_consuming(conn: aio_pika.abc.AbstractConnection, env: Env, child: Child) -> None:
    for _ in range(600):
        if not child.alive():
            raise RuntimeError(f"hub exited:\n{child.output()}")
        _ready, consumers = await queue_count(conn, env.names.inbound_queue)
        if consumers:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"hub did not start consuming:\n{child.output()}")


async def probe(
    conn: aio_pika.abc.AbstractConnection,
    env: Env,
    routing_key: str,
    body: bytes,
    out_queue: str,
    timeout: float = 6.0,
) -> bool:
    """Does the running hub answer ``body`` with anything on ``out_queue``? (feature present)"""
    before, _ = await queue_count(conn, out_queue)
    await preload(conn, env.names.inbound_exchange, [(routing_key, body)])
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        now, _ = await queue_count(conn, out_queue)
        if now > before:
            await purge(conn, [out_queue])
            return True
        await asyncio.sleep(0.1)
    return False


async def hub_throughput(
    conn: aio_pika.abc.AbstractConnection,
    name: str,
    env: Env,
    items: list[tuple[str, bytes]],
    out_queues: list[str],
    per_message: int,
    timeout: float,
    hub_settings: dict[str, Any],
    profile: Path | None = None,
) -> Result:
    """(2)/(3) a hub subprocess draining preloaded ``items``; counts arrivals on ``out_queues``."""
    result = Result(name, len(out_queues), len(items), len(items) * per_message)
    await preload(conn, env.names.inbound_exchange, items)
    child = start_hub(env.hub_env(**hub_settings))
    counter = Counter(conn, out_queues)
    spy = None
    try:
        await _wait_consuming(conn, env, child)
        if profile is not None:
            spy = py_spy(child.pid, profile, max(3, int(timeout)))
        samples = await wait_for(counter, result.expected_out, timeout)
        _fill(result, samples, child)
        if result.delivered_out < result.expected_out:
            print(f"--- {name}: hub log tail ---\n{child.output(3000)}", file=sys.stderr)
    finally:
        await counter.close()
        child.stop()
        if spy is not None:
            with contextlib.suppress(Exception):
                spy.wait(10)
    return result


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    s = sorted(values)

    def p(q: float) -> float:
        return s[min(len(s) - 1, int(q * len(s)))]

    return {"p50": p(0.5), "p99": p(0.99), "p99.9": p(0.999), "max": s[-1]}


async def _start_helper(
    module: str, args: list[str], ready_within: float, stdin: bool = False
) -> asyncio.subprocess.Process:
    """``python -m module --url BROKER_URL *args``, returned once it prints ``ready``."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        "--url",
        BROKER_URL,
        *args,
        stdin=asyncio.subprocess.PIPE if stdin else None,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        ready = await asyncio.wait_for(process.stdout.readline(), timeout=ready_within)
    except TimeoutError:
        ready = b""
    if ready.strip() != b"ready":
        process.kill()
        await process.wait()
        raise RuntimeError(f"{module} did not start: {ready!r}")
    return process


async def _start_receiver(queue: str, expect: int, out: Path) -> asyncio.subprocess.Process:
    """``bench.receiver`` consuming ``queue``, returned once it says it is consuming."""
    args = ["--queue", queue, "--expect", str(expect), "--out", str(out)]
    return await _start_helper("bench.receiver", args, ready_within=30)


async def _start_sender(plan: Path, rate: float, out: Path) -> asyncio.subprocess.Process:
    """``bench.sender`` connected with every message encoded, waiting for its start time."""
    args = ["--plan", str(plan), "--rate", repr(rate), "--out", str(out)]
    return await _start_helper("bench.sender", args, ready_within=60, stdin=True)


def _temp(kind: str) -> Path:
    fd, name = tempfile.mkstemp(prefix=f"bench-{kind}-", suffix=".json")
    os.close(fd)
    return Path(name)


def _match(
    arrivals: list[tuple[str | None, str | None, str | None, float]], sent_at: dict[str, float]
) -> dict[str, float]:
    """First arrival per sent message: by correlation id, else message id, else body id."""
    got: dict[str, float] = {}
    for corr, mid, from_body, at in arrivals:
        key = corr if corr in sent_at else mid if mid in sent_at else from_body
        if key in sent_at and key not in got:
            got[key] = at
    return got


async def _arrivals(
    receiver: asyncio.subprocess.Process, out: Path, sent_at: dict[str, float]
) -> dict[str, float]:
    """What one receiver saw, once it has stopped (given 15 s to see everything)."""
    try:
        await asyncio.wait_for(receiver.wait(), timeout=15)
    except TimeoutError:
        receiver.terminate()  # it writes what arrived so far
        await asyncio.wait_for(receiver.wait(), timeout=10)
    raw = await asyncio.to_thread(out.read_bytes)
    if receiver.returncode != 0 or not raw:
        raise RuntimeError(f"bench.receiver failed (exit {receiver.returncode})")
    return _match(orjson.loads(raw), sent_at)


async def open_loop_latency(
    conn: aio_pika.abc.AbstractConnection,
    env: Env | None,
    name: str,
    make: Callable[[int], tuple[str, bytes, str]],
    out_queue: str | Sequence[str],
    rate: float,
    duration: float,
    warmup: float = 1.0,
    child: Child | None = None,
    exchange_name: str | None = None,
) -> Result:
    """(4) send on a fixed schedule (no coordinated omission); latency from the scheduled time.

    Each message is expected once on every queue of ``out_queue`` (a fan-out); the latencies
    of all of them count, and ``per_queue_p99_ms`` tells the queues apart. ``exchange_name``
    is where the messages go when there is no ``env`` (whose inbound exchange is the default).

    The load generator shares the box with what it measures, so it spends as little as it
    can, in two processes of its own that speak raw AMQP: ``bench.sender`` encodes every
    message's frames before the clock starts and writes whatever is due as one write from a
    plain blocking loop; ``bench.receiver`` reads and times arrivals, matched by their AMQP
    properties (the hub's correlation id, the relay's message id) instead of by their bodies.
    """
    queues = [out_queue] if isinstance(out_queue, str) else list(out_queue)
    total = int(rate * duration)
    result = Result(name, len(queues), total, total * len(queues), rate=rate)
    if exchange_name is not None:
        target = exchange_name
    elif env is not None:
        target = env.names.inbound_exchange
    else:
        raise ValueError("open_loop_latency needs an env or an exchange_name")
    plan = [make(i) for i in range(total)]
    files = [_temp(kind) for kind in ("plan", "sent")]
    plan_file, sent_file = files
    arrivals = [_temp("arrivals") for _ in queues]
    files += arrivals
    receivers: list[asyncio.subprocess.Process] = []
    sender = None
    try:
        await asyncio.to_thread(
            plan_file.write_bytes,
            orjson.dumps([[target, rk, body.decode(), key] for rk, body, key in plan]),
        )
        for queue, out in zip(queues, arrivals, strict=True):
            receivers.append(await _start_receiver(queue, total, out))
        sender = await _start_sender(plan_file, rate, sent_file)
        not_rolled = await asyncio.to_thread(wal.roll_over)  # the window starts with it empty
        start = time.monotonic() + 0.2
        assert sender.stdin is not None
        sender.stdin.write(f"go {start!r}\n".encode())
        await sender.stdin.drain()
        await asyncio.wait_for(sender.wait(), timeout=duration + 60)
        sent = orjson.loads(await asyncio.to_thread(sent_file.read_bytes))
        if sender.returncode != 0:
            raise RuntimeError(f"bench.sender failed (exit {sender.returncode})")
        sent_at = {key: start + i / rate for i, (_, _, key) in enumerate(plan)}
        late: list[float] = sent["late"]
        outcomes = await asyncio.gather(  # the same 15 s for every queue; all finish first
            *(_arrivals(r, out, sent_at) for r, out in zip(receivers, arrivals, strict=True)),
            return_exceptions=True,
        )
        failed = [o for o in outcomes if isinstance(o, BaseException)]
        if failed:
            raise failed[0]
        got_by_queue = [o for o in outcomes if not isinstance(o, BaseException)]
    finally:
        for process in (*receivers, sender):
            if process is not None and process.returncode is None:
                process.kill()
                await process.wait()
        for path in files:
            await asyncio.to_thread(path.unlink, missing_ok=True)
    cut = start + warmup
    result.measured = sum(1 for t in sent_at.values() if t >= cut)
    lat: list[float] = []
    for queue, got in zip(queues, got_by_queue, strict=True):
        mine = [(got[k] - t) * 1000 for k, t in sent_at.items() if k in got and t >= cut]
        if len(queues) > 1 and mine:
            result.per_queue_p99_ms[queue] = percentiles(mine)["p99"]
        lat += mine
    result.latencies = lat
    result.latency_ms = percentiles(lat)
    result.delivered_out = sum(len(got) for got in got_by_queue)
    result.seconds = duration
    result.in_per_s = rate
    result.out_per_s = rate * len(queues)
    if child is not None:
        result.rss_peak_mb = child.rss.peak() / MB
        result.rss_end_mb = child.rss.samples[-1][1] / MB if child.rss.samples else 0
    # Sends that left late still count from their schedule; how late they left shows how
    # much of the tail is the shared box and the broker holding back the load generator.
    lag = percentiles([x * 1000 for x in late[int(rate * warmup) :]])
    result.sender_lag_ms = lag
    if lag:
        result.note = f"sender behind schedule: p99 {lag['p99']:.0f}, max {lag['max']:.0f} ms"
    missing = result.expected_out - result.delivered_out
    if missing:
        result.note += f"; {missing} of {result.expected_out} never arrived within 15 s"
    if sent["returned"]:
        result.note += f"; {sent['returned']} came back unroutable"
    if sent["nacked"]:
        result.note += f"; the broker refused {sent['nacked']}"
    if not_rolled:
        result.note += f"; {not_rolled}"
    return result
