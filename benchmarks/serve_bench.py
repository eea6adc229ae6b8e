"""Open-loop load test of ``hf-genrec serve``: requests arrive at a constant rate whatever the answers do.

    python benchmarks/serve_bench.py --url http://127.0.0.1:8000 --qps 100 --duration 20
    python benchmarks/serve_bench.py --url http://127.0.0.1:8000 --qps 50,100,200,400 --duration 15
    # start servers itself, ramp the rate, compare micro-batching with --max_batch_size 1:
    python benchmarks/serve_bench.py --spawn outputs/etegrec-default/final --qps 50,100,200,300,400 --compare_batch_size_1

Each request is ``{"history": [...], "k": 10}`` with a history drawn from the model's own item ids
(``item_map.json`` of the checkpoint, or ``GET /ready``'s count with dense ids 1..N), of 1 to
``--max_history`` items. Request i is sent at ``start + i / qps`` (open loop: a slow server does
not slow the arrivals, so queueing shows in the latency); at most ``qps * duration`` requests,
and the run stops ``--timeout`` seconds after the last arrival. Loopback addresses only.
Prints achieved QPS, P50/P95/P99 latency and errors by status code per rate, and the highest rate
whose P95 stays under ``--slo_ms`` with no errors ("sustainable"). ``--hostile_share 0.3`` mixes in
hostile requests (300 histories, 1,500-item histories, malformed JSON, unknown ids, clients that
send half a body and pause a second): the figures are the valid requests', every kind's answers are
counted, and a 5xx anywhere fails the rate.

    python benchmarks/serve_bench.py --spawn outputs/etegrec-default/final --qps 100 --duration 20 --hostile_share 0.3

``--slow_clients 500`` keeps that many connections dripping one header line every ``--slow_every_s``
seconds through each rate (reconnecting when dropped, so the pressure lasts): the figures say how
long the server let each one hold its socket, beside the valid requests' latency.

    python benchmarks/serve_bench.py --spawn outputs/etegrec-default/final --qps 100 --duration 30 --slow_clients 500
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from urllib.parse import urlparse

import httpx


def check_loopback(url: str) -> None:
    host = urlparse(url).hostname or ""
    try:
        ok = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise SystemExit(f"serve_bench.py: error: only loopback targets are allowed, got {host!r}")


def item_ids_of(model_path: str | None, url: str) -> list:
    if model_path and os.path.exists(os.path.join(model_path, "item_map.json")):
        with open(os.path.join(model_path, "item_map.json")) as f:
            return json.load(f)["original_ids"]
    n = httpx.get(url + "/ready", timeout=10).json()["num_items"]
    return list(range(1, n + 1))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


HOSTILE_KINDS = ("oversized_batch", "long_history", "malformed", "unknown_ids", "slow_client")


def hostile_body(kind: str, items: list, rng: random.Random):
    """A request of one hostile kind: what the server must refuse (4xx) or, for a slow client, serve
    without holding anything else up."""
    if kind == "oversized_batch":  # more histories than max_histories_per_request (256)
        return {"histories": [[rng.choice(items)] for _ in range(300)], "k": 10}
    if kind == "long_history":  # more items than max_history_items (1,000)
        return {"history": [rng.choice(items) for _ in range(1500)], "k": 10}
    if kind == "malformed":
        return b'{"history": [1, 2,'
    if kind == "unknown_ids":
        return {"history": [f"no-such-item-{rng.random()}" for _ in range(3)], "k": 10}
    return {"history": rng.sample(items, min(3, len(items))), "k": 10}  # slow_client: valid, sent slowly


async def slow_post(url: str, body: dict, pause: float) -> int:
    """POST ``body`` over a raw connection, half of it, then the rest after ``pause`` seconds."""
    parsed = urlparse(url)
    reader, writer = await asyncio.open_connection(parsed.hostname, parsed.port)
    data = json.dumps(body).encode()
    head = f"POST /v1/recommend HTTP/1.1\r\nHost: {parsed.hostname}\r\nContent-Type: application/json\r\n"
    writer.write((head + f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n").encode() + data[: len(data) // 2])
    await writer.drain()
    await asyncio.sleep(pause)
    writer.write(data[len(data) // 2 :])
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    writer.close()
    return status


async def drip_headers(url: str, every_s: float, stop: asyncio.Event, held: list[float], refused: Counter) -> None:
    """One slow client: connect, send a header line every ``every_s`` seconds, reconnect when dropped.

    Appends to ``held`` how long the server kept each connection open; counts in ``refused`` the
    status lines of what it answered before closing (``"none"``: closed silently).
    """
    parsed = urlparse(url)
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            reader, writer = await asyncio.open_connection(parsed.hostname, parsed.port)
        except OSError as err:
            refused[type(err).__name__] += 1
            await asyncio.sleep(every_s)
            continue
        writer.write(f"POST /v1/recommend HTTP/1.1\r\nHost: {parsed.hostname}\r\n".encode())
        line = 0
        while not stop.is_set():
            try:
                answer = await asyncio.wait_for(reader.read(65536), every_s)
            except asyncio.TimeoutError:
                line += 1
                writer.write(f"X-Drip-{line}: slow\r\n".encode())
                continue
            except OSError:
                answer = b""
            held.append(time.perf_counter() - t0)
            refused[answer.split(b"\r\n", 1)[0].decode(errors="replace")[9:12] or "none"] += 1
            break
        writer.close()


async def run_rate(
    url: str,
    items: list,
    qps: float,
    duration: float,
    timeout: float,
    max_history: int,
    seed: int,
    hostile: float = 0.0,
    slow_clients: int = 0,
    slow_every_s: float = 3.0,
) -> dict:
    rng = random.Random(seed)
    stop_dripping, held, refused = asyncio.Event(), [], Counter()
    drippers = [
        asyncio.create_task(drip_headers(url, slow_every_s, stop_dripping, held, refused)) for _ in range(slow_clients)
    ]
    if slow_clients:
        await asyncio.sleep(slow_every_s)  # they are all connected and dripping before the first request
    total = int(qps * duration)
    plan = []
    for _ in range(total):
        if rng.random() < hostile:
            kind = rng.choice(HOSTILE_KINDS)
            plan.append((kind, hostile_body(kind, items, rng)))
        else:
            plan.append(("valid", {"history": rng.sample(items, rng.randint(1, min(max_history, len(items)))), "k": 10}))
    latencies: list[float] = []
    codes: Counter = Counter()
    by_kind: dict[str, Counter] = {}
    limits = httpx.Limits(max_connections=2000, max_keepalive_connections=2000)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:

        async def one(kind: str, body) -> None:
            t0 = time.perf_counter()
            try:
                if kind == "slow_client":
                    status = await asyncio.wait_for(slow_post(url, body, pause=1.0), timeout)
                elif isinstance(body, bytes):
                    status = (await client.post("/v1/recommend", content=body)).status_code
                else:
                    status = (await client.post("/v1/recommend", json=body)).status_code
                by_kind.setdefault(kind, Counter())[status] += 1
                if kind == "valid":
                    codes[status] += 1
                    if status == 200:
                        latencies.append(time.perf_counter() - t0)
            except (httpx.HTTPError, OSError, asyncio.TimeoutError) as err:
                by_kind.setdefault(kind, Counter())[type(err).__name__] += 1
                if kind == "valid":
                    codes[type(err).__name__] += 1

        start = time.perf_counter()
        tasks = []
        for i, (kind, body) in enumerate(plan):
            delay = start + i / qps - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(kind, body)))
        sent = time.perf_counter() - start
        await asyncio.wait(tasks, timeout=timeout + 1)
        elapsed = time.perf_counter() - start
    stop_dripping.set()
    if drippers:
        await asyncio.wait(drippers, timeout=slow_every_s + 5)
    ok = codes.get(200, 0)
    server_errors = sum(n for c in by_kind.values() for k, n in c.items() if isinstance(k, int) and k >= 500)
    return {
        "target_qps": qps,
        "sent": total,
        "hostile_share": hostile,
        "send_seconds": round(sent, 2),
        "achieved_qps": round(ok / elapsed, 1),
        "p50_ms": round(1000 * percentile(latencies, 50), 1),
        "p95_ms": round(1000 * percentile(latencies, 95), 1),
        "p99_ms": round(1000 * percentile(latencies, 99), 1),
        # of the valid requests (the SLO is about them); every kind's answers below
        "errors": {str(k): v for k, v in codes.items() if k != 200},
        "answers_by_kind": {kind: {str(k): v for k, v in c.items()} for kind, c in by_kind.items()},
        "server_errors_5xx": server_errors,
        **(
            {
                "slow_clients": {
                    "clients": slow_clients,
                    "every_s": slow_every_s,
                    "connections_dropped": len(held),
                    "held_s_p50": round(percentile(held, 50), 2),
                    "held_s_max": round(max(held, default=float("nan")), 2),
                    "answers_before_close": dict(refused),
                }
            }
            if slow_clients
            else {}
        ),
    }


def sweep(url: str, items: list, a) -> list[dict]:
    rows = []
    for qps in a.qps:
        row = asyncio.run(
            run_rate(
                url, items, qps, a.duration, a.timeout, a.max_history, a.seed, a.hostile_share, a.slow_clients, a.slow_every_s
            )
        )
        rows.append(row)
        print(
            f"  {row['target_qps']:>6.0f} QPS -> achieved {row['achieved_qps']:>7.1f}, p50 {row['p50_ms']:>7.1f} ms, "
            f"p95 {row['p95_ms']:>7.1f} ms, p99 {row['p99_ms']:>7.1f} ms, errors {row['errors'] or 'none'}"
            + (f", 5xx {row['server_errors_5xx']}, hostile answers {row['answers_by_kind']}" if a.hostile_share else "")
            + (f", slow clients {row['slow_clients']}" if a.slow_clients else ""),
            flush=True,
        )
        if row["errors"] and a.stop_on_failure:
            break
    return rows


def sustainable(rows: list[dict], slo_ms: float) -> float:
    good = [r["target_qps"] for r in rows if not r["errors"] and not r.get("server_errors_5xx") and r["p95_ms"] < slo_ms]
    return max(good, default=0.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(model: str, max_batch_size: int, extra: list[str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "hf_genrec", "serve", "--model", model, "--port", str(port), "--log_level", "warning"]
    proc = subprocess.Popen([*cmd, "--max_batch_size", str(max_batch_size), *extra])
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            if httpx.get(url + "/ready", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not become ready in 300 s")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default=None, help="a running server (loopback)")
    p.add_argument("--spawn", default=None, metavar="MODEL", help="start hf-genrec serve on this checkpoint instead")
    p.add_argument("--qps", default="100", help="rate(s), comma separated: a sweep")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of arrivals per rate")
    p.add_argument("--timeout", type=float, default=10.0, help="client timeout per request, seconds")
    p.add_argument("--max_history", type=int, default=20)
    p.add_argument("--slo_ms", type=float, default=500.0)
    p.add_argument("--max_batch_size", type=int, default=64, help="with --spawn")
    p.add_argument("--compare_batch_size_1", action="store_true", help="with --spawn: also sweep --max_batch_size 1")
    p.add_argument("--stop_on_failure", action="store_true", help="stop a sweep at the first rate with errors")
    p.add_argument("--server_args", default="", help="with --spawn: more hf-genrec serve flags, space separated")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--hostile_share",
        type=float,
        default=0.0,
        help="share of arrivals that are hostile (oversized, malformed, unknown ids, slow clients); the latency "
        "figures and the SLO are those of the valid ones, and no request may get a 5xx",
    )
    p.add_argument("--slow_clients", type=int, default=0, help="connections dripping headers through each rate")
    p.add_argument("--slow_every_s", type=float, default=3.0, help="seconds between a slow client's header lines")
    p.add_argument("--json", default=None, help="write the results here")
    a = p.parse_args(argv)
    a.qps = [float(x) for x in a.qps.split(",")]
    if bool(a.url) == bool(a.spawn):
        raise SystemExit("serve_bench.py: error: give exactly one of --url or --spawn")
    results = {"slo_ms": a.slo_ms, "duration_s": a.duration, "runs": {}}
    configs = [a.max_batch_size] + ([1] if a.compare_batch_size_1 else [])
    for mbs in configs if a.spawn else [None]:
        proc = None
        if a.spawn:
            proc, url = spawn(a.spawn, mbs, a.server_args.split())
        else:
            url = a.url.rstrip("/")
        check_loopback(url)
        items = item_ids_of(a.spawn, url)
        label = f"max_batch_size={mbs}" if mbs else url
        print(f"{label}: {len(items)} items, open loop, {a.duration:.0f} s per rate", flush=True)
        try:
            rows = sweep(url, items, a)
        finally:
            if proc is not None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)
        best = sustainable(rows, a.slo_ms)
        print(f"  sustainable (p95 < {a.slo_ms:.0f} ms, no errors): {best:.0f} QPS", flush=True)
        results["runs"][label] = {"rates": rows, "sustainable_qps": best}
    if a.compare_batch_size_1 and a.spawn:
        b, one = (results["runs"][f"max_batch_size={m}"]["sustainable_qps"] for m in configs)
        results["batching_ratio"] = round(b / one, 2) if one else None
        print(f"micro-batching / max_batch_size 1, sustainable QPS: {b:.0f} / {one:.0f} = {results['batching_ratio']}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    main()
