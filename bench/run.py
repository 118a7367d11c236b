"""``python -m bench.run``: the whole benchmark in one bounded run; ``--smoke`` checks counts only.

Scenarios, each on its own name prefix and database, removed afterwards:
  1. the raw aio-pika relay (reference) at fan-out 1 and 5;
  2. the hub routing ERP product.upserted to 1 and 5 sales channels, and (when the stock
     service is present) ERP stock.level turned into stock.availability for 1 and 5 channels;
  3. the hub's order path (when the order service is present): order.placed -> salesorder.create;
  4. open-loop latency at 50% of the measured maximum;
  5. the RSS of the hub process during each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import orjson

from bench import messages, report
from bench.env import (
    BROKER_URL,
    DATABASE_BASE,
    Env,
    drop_leftover_databases,
    preload,
    purge,
    queue_count,
)
from bench.proc import BoxLoad, start_hub
from bench.scenarios import (
    Result,
    _wait_consuming,
    _wait_drained,
    hub_throughput,
    open_loop_latency,
    probe,
    relay_latency,
    relay_throughput,
)
from hub.settings import Settings

ORDER_SKUS = 200
SWEEP = report.SWEEP


async def _with_hub(conn: aio_pika.abc.AbstractConnection, env: Env, settings: dict[str, Any], fn):
    child = start_hub(env.hub_env(**settings))
    try:
        await _wait_consuming(conn, env, child)
        return await fn(child)
    finally:
        child.stop()


async def routing(conn, run, n, count, timeout, settings, profile=None) -> Result:
    env = Env(n)
    await env.declare(conn)
    try:
        items = [("erp.product.upserted", messages.product(run, i)) for i in range(count)]
        return await hub_throughput(
            conn,
            f"hub routing product.upserted N={n}",
            env,
            items,
            [env.queue(c) for c in env.sales],
            n,
            timeout,
            settings,
            profile,
        )
    finally:
        await env.cleanup(conn)


async def stock(conn, run, n, count, timeout, settings) -> Result:
    env = Env(n)
    name = f"hub stock.level -> availability N={n}"
    await env.declare(conn)
    try:
        out = [env.queue(c) for c in env.sales]

        async def check(child):
            found = await probe(
                conn,
                env,
                "erp.stock.level",
                messages.seed_stock(run + "probe", "PROBE-1", 50),
                out[0],
            )
            if found:  # the probe's availability goes to every channel: none may be counted
                await _wait_holding(conn, out[1:], timeout=6.0)
                await purge(conn, out)
            return found

        if not await _with_hub(conn, env, settings, check):
            return _absent(name, n, "stock service (issue 3) not present: no availability")
        items = [("erp.stock.level", messages.stock_level(run, i, skus=5000)) for i in range(count)]
        return await hub_throughput(conn, name, env, items, out, n, timeout, settings)
    finally:
        await env.cleanup(conn)


async def _wait_holding(conn, queues: list[str], timeout: float) -> None:
    """Until each of ``queues`` holds a message, or ``timeout`` passed."""
    deadline = asyncio.get_running_loop().time() + timeout
    waiting = list(queues)
    while waiting and asyncio.get_running_loop().time() < deadline:
        waiting = [q for q in waiting if (await queue_count(conn, q))[0] == 0]
        if waiting:
            await asyncio.sleep(0.05)


async def _seed_orders(conn, env: Env, run: str) -> None:
    price_list = env.config.markets["nl"].price_list
    seeds = [
        ("erp.stock.level", messages.seed_stock(run, f"ORDER-{k:04d}", 10**6))
        for k in range(ORDER_SKUS)
    ]
    seeds += [
        ("erp.price.changed", messages.price(run, f"ORDER-{k:04d}", price_list))
        for k in range(ORDER_SKUS)
    ]

    await preload(conn, env.names.inbound_exchange, seeds)
    await _wait_drained(conn, env, 1.5)
    await purge(conn, [env.queue(c) for c in env.config.channels])


async def orders(conn, run, count, timeout, settings, profile=None) -> Result:
    env = Env(1)
    name = "hub order path order.placed -> salesorder.create"
    await env.declare(conn)
    shop = env.sales[0]
    try:

        async def setup(child):
            await _seed_orders(conn, env, run)
            return await probe(
                conn,
                env,
                f"{shop}.order.placed",
                messages.order(run + "probe", 0, shop, ORDER_SKUS),
                env.queue("erp"),
                timeout=8,
            )

        if not await _with_hub(conn, env, settings, setup):
            return _absent(name, 1, "order service (issue 4) not present: no salesorder.create")
        items = [
            (f"{shop}.order.placed", messages.order(run, i, shop, ORDER_SKUS)) for i in range(count)
        ]
        out = [env.queue("erp")]
        return await hub_throughput(conn, name, env, items, out, 1, timeout, settings, profile)
    finally:
        await env.cleanup(conn)


def _absent(name: str, n: int, why: str) -> Result:
    return Result(name, n, 0, 0, note=why, skipped=True)


async def latency(conn, run, kind, rate, duration, settings) -> Result:
    env = Env(1)
    await env.declare(conn)
    out = env.queue(env.sales[0])
    try:
        if kind == "product":
            name = "latency product.upserted -> channel queue"

            def make(i):
                return "erp.product.upserted", messages.product(run + "-lp", i)
        else:
            name = "latency stock.level -> stock.availability"

            def make(i):
                return "erp.stock.level", messages.stock_level(run + "-ls", i, skus=100_000)

        def keyed(i):
            rk, body = make(i)
            return rk, body, orjson.loads(body)["id"]

        async def go(child):
            return await open_loop_latency(conn, env, name, keyed, out, rate, duration, child=child)

        return await _with_hub(conn, env, settings, go)
    finally:
        await env.cleanup(conn)


async def server_versions(conn) -> dict[str, str]:
    out: dict[str, str] = {}
    props = conn.transport.connection.server_properties if conn.transport else {}
    v = props.get("version")
    if v:
        out["RabbitMQ"] = v.decode() if isinstance(v, bytes) else str(v)
    pg = await asyncpg.connect(f"{DATABASE_BASE}/postgres")
    try:
        out["PostgreSQL"] = str(await pg.fetchval("SHOW server_version"))
    finally:
        await pg.close()
    return out


async def full(args) -> list[Result]:
    conn = await aio_pika.connect(BROKER_URL)
    run = uuid.uuid4().hex[:6]
    settings: dict[str, Any] = dict(kv.split("=", 1) for kv in args.hub_set)
    m1, m5 = args.messages, max(1, args.messages * 2 // 5)
    results: list[Result] = []

    box = BoxLoad()
    run_at = report.stamp()

    def log(r: Result) -> None:
        nonlocal box
        r.box_busy_pct, r.box_stolen_pct = box.read()
        box = BoxLoad()
        results.append(r)
        print(json.dumps(r.public(), default=str), flush=True)

    try:
        dropped = await drop_leftover_databases()
        if dropped:
            print(f"dropped databases left by earlier runs: {', '.join(dropped)}")
        extra = await server_versions(conn)
        for n, m in ((1, m1), (5, m5)):
            log(await relay_throughput(conn, run, n, m, args.relay_prefetch, args.timeout))
        prof = Path(args.profile) if args.profile else None
        for n, m in ((1, m1), (5, m5)):
            log(await routing(conn, run, n, m, args.timeout, settings, prof if n == 5 else None))
        for n, m in ((1, m1), (5, m5)):
            log(await stock(conn, run, n, m, args.timeout, settings))
        log(await orders(conn, run, args.orders, args.timeout, settings))
        route_max = next(
            r.in_per_s for r in results if r.name.startswith("hub routing") and r.fanout == 1
        )
        log(
            await relay_latency(
                conn, run, 0.5 * route_max, args.latency_seconds, args.relay_prefetch
            )
        )
        log(await latency(conn, run, "product", 0.5 * route_max, args.latency_seconds, settings))
        stock1 = next(
            (r for r in results if r.name.startswith("hub stock") and r.fanout == 1), None
        )
        if stock1 is not None and not stock1.skipped and stock1.in_per_s:
            for k in range(args.latency_repeat):  # its tail moves with the box's background work
                r = await latency(
                    conn, run, "stock", 0.5 * stock1.in_per_s, args.latency_seconds, settings
                )
                if args.latency_repeat > 1:
                    r.name = f"{r.name} #{k + 1}"
                log(r)
        else:
            log(
                _absent(
                    "latency stock.level -> stock.availability",
                    1,
                    "stock service (issue 3) not present",
                )
            )
        top = stock1.in_per_s if stock1 is not None and stock1.in_per_s else route_max
        for fraction in args.sweep:  # the same two paths at lower loads, for where p99 holds
            rate = round(fraction * top)
            r = await relay_latency(conn, run, rate, args.latency_seconds, args.relay_prefetch)
            r.name = f"{SWEEP}{r.name}"
            log(r)  # each row logged as soon as it is measured: the box load is per row
            r = await latency(conn, run, "stock", rate, args.latency_seconds, settings)
            r.name = f"{SWEEP}{r.name}"
            log(r)
    finally:
        await conn.close()
    effective = Settings().model_dump(include={"prefetch", "batch_max", "db_pool_max"})
    effective.update(settings)
    effective["relay_prefetch"] = args.relay_prefetch
    saved = {
        "results": [{**r.public(), "latencies": r.latencies} for r in results],
        "versions": extra,
        "conditions": args.conditions,
        "settings": effective,
        "run_at": run_at,
    }
    (Path(report.HERE) / "results.json").write_text(json.dumps(saved, default=str))
    path = report.write(results, extra, args.conditions, effective, run_at=run_at)
    print(f"wrote {path}")
    return results


def rerender() -> None:
    """Write RESULTS.md again from results.json (after editing findings.md)."""
    saved = json.loads((Path(report.HERE) / "results.json").read_text())
    results = [Result(**r) for r in saved["results"]]
    print(
        report.write(
            results,
            saved["versions"],
            saved["conditions"],
            saved["settings"],
            run_at=saved.get("run_at"),
        )
    )


async def smoke(count: int = 200, fanout: int = 3) -> dict[str, Any]:
    """Correctness only: every message arrives, exactly once per output queue, through both."""
    conn = await aio_pika.connect(BROKER_URL)
    run = uuid.uuid4().hex[:6]
    try:
        relay = await relay_throughput(conn, run, fanout, count, 64, timeout=20)
        hub = await routing(conn, run, fanout, count, 20, {})
        lat = await latency(conn, run, "product", 100, 1.5, {})
    finally:
        await conn.close()
    return {
        "relay": (relay.delivered_out, relay.expected_out),
        "hub": (hub.delivered_out, hub.expected_out),
        "latency": (lat.delivered_out, lat.messages),
    }


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    p.add_argument("--smoke", action="store_true", help="quick correctness check, no timing")
    p.add_argument(
        "--messages", type=int, default=40000, help="messages for fan-out 1 runs (the maximum)"
    )
    p.add_argument("--orders", type=int, default=10000)
    p.add_argument("--timeout", type=float, default=90.0, help="per scenario")
    p.add_argument("--latency-seconds", type=float, default=10.0)
    p.add_argument(
        "--latency-repeat", type=int, default=3, help="runs of the stock latency at 50%% load"
    )
    p.add_argument("--relay-prefetch", type=int, default=256)
    p.add_argument(
        "--sweep",
        type=float,
        nargs="*",
        default=[0.1, 0.25, 0.35],
        help="loads, as fractions of the hub's measured stock maximum, for the latency sweep",
    )
    p.add_argument(
        "--hub-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="HUB_ setting for the hub under test, e.g. prefetch=1024",
    )
    p.add_argument("--profile", help="record a py-spy flame graph of the hub (N=5 routing) here")
    p.add_argument("--conditions", default="local broker and database shared with other work")
    p.add_argument("--report-only", action="store_true", help="re-render from results.json")
    args = p.parse_args()
    if args.report_only:
        rerender()
        return
    if args.smoke:
        out = asyncio.run(smoke())
        print(json.dumps(out))
        ok = all(a == b for a, b in out.values())
        sys.exit(0 if ok else 1)
    asyncio.run(full(args))


if __name__ == "__main__":
    main()
