"""Load benchmark of the real-time scoring service (uvicorn + Redis), and `mlflow models serve`.

A small but real CatBoost model is trained on simulated data and registered as
`fraud-detector` v1 (champion) in an SQLite MLflow store under benchmarks/out/serving/ (cached:
a second run reuses it). Then, in one run:

  1. the service (`fraud_assets.serving.app:app_from_env` under uvicorn, one worker) starts as a
     subprocess on a free port with FRAUD_REDIS_URL = the local Redis (a unique key prefix,
     deleted at the end) and bearer-token auth on, and is measured with
       (a) a fixed rate of 400 tx/s for --duration seconds (open loop: a Python asyncio/aiohttp
           generator sends on schedule and measures each latency from its *scheduled* send time,
           so a stall is not hidden by coordinated omission; at most --max-connections open,
           like a client's bounded pool) -> errors, p50, p99, max; --extra-rates adds lower
           rates (--extra-duration s each) to find the rate the box does sustain;
       (b) the maximum single-request throughput: wrk (closed loop, --connections, 20 s), a Lua
           script varying transaction_id / customer / terminal per request;
       (c) the batch endpoint: rows/s with batches of 500;
  2. `mlflow models serve -m models:/fraud-detector/1 --env-manager local` (one uvicorn worker)
     of the same model gets the same (a) and (b), plus batches of 500 rows. Its /invocations
     takes the 15 FEATURE_COLUMNS already computed (pandas split JSON): it does no feature
     computation, no Redis, no auth, no rules, so it is an upper bound of "just the model".
     (Its pyfunc of a CatBoost classifier answers class labels, not probabilities.)
     It runs `bash -c "exec uvicorn ..."`, so the venv's bin directory is put on PATH.

2-core caveat: the server under test is pinned to CPU 0 and the load generators (this process,
wrk) to CPU 1, but Redis, the kernel's loopback networking and the OS float over both cores, so
the figures are those of a shared box, not of a dedicated server with a separate load client.
Each row's notes carry the 1-minute load average before -> after the phase: above ~2, other
work was competing for the two cores and the figures understate the service.

    .venv/bin/python benchmarks/bench_serving.py --extra-rates 100 200   # + 60 s at 100, 200/s
    .venv/bin/python benchmarks/bench_serving.py            # 300 s fixed-rate phases
    .venv/bin/python benchmarks/bench_serving.py --quick    # 20 s fixed-rate phases
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "out" / "serving"
ROOT = Path(__file__).resolve().parents[1]
ORIGIN = dt.date(2018, 4, 1)
MODEL_NAME = "fraud-detector"
TOKEN = "bench-" + uuid.uuid4().hex
REDIS_URL = "redis://127.0.0.1:6379/0"
WHEN = "2018-05-04 12:14:37"  # after the training data; every request uses this time
SERVER_CPUS = {0}
LOAD_CPUS = {1}
BATCH_SIZE = 500
CUSTOMERS = 2_000  # the raw ids requests cycle through
TERMINALS = 4_000
TARGET_RPS = 3_000
TARGET_P99_MS = 10.0


# ------------------------------------------------------------------------------- the model


def ensure_model() -> tuple[str, str]:
    """The cached SQLite MLflow store with `fraud-detector` v1 as champion: (uri, artifacts)."""
    store = OUT / "mlflow"
    uri = f"sqlite:///{store / 'mlflow.db'}"
    artifacts = str(store / "mlartifacts")
    if (store / "complete").exists():
        return uri, artifacts
    shutil.rmtree(store, ignore_errors=True)
    store.mkdir(parents=True)

    import polars as pl

    from fraud_assets.features.polars_engine import compute_features
    from fraud_assets.features.spec import FEATURE_COLUMNS
    from fraud_assets.modeling.registry import ModelRegistry
    from fraud_assets.modeling.training import TrainingConfig, train_model
    from fraud_assets.simulation import SimulationParams, TransactionSimulator

    started = time.perf_counter()
    days = 32
    params = SimulationParams(
        customers=CUSTOMERS, terminals=TERMINALS, days=days, start_date=ORIGIN, seed=7
    )
    frame = pl.concat([day.frame for day in TransactionSimulator(params).days()])
    features = compute_features(frame.drop("base_amount"))
    config = TrainingConfig(window_days=14, validation_days=7, delay_days=7, iterations=200)
    trained = train_model(features, ORIGIN + dt.timedelta(days=days - 1), config)
    registry = ModelRegistry(uri, model_name=MODEL_NAME, artifact_location=artifacts)
    version = registry.log_challenger(trained, tags={"source": "bench_serving"})
    registry.promote(version.version, "bench_serving")
    # Feature rows for `mlflow models serve` (which computes no features itself).
    sample = features.select(FEATURE_COLUMNS).sample(2_000, seed=1).cast(pl.Float64)
    sample.write_parquet(store / "feature_rows.parquet")
    info = {
        "rows": features.height,
        "fraud_rate": float(features["tx_fraud"].mean()),
        "validation": trained.validation_metrics,
        "iterations": trained.best_iteration,
        "seconds": round(time.perf_counter() - started, 1),
    }
    (store / "model.json").write_text(json.dumps(info, indent=2, default=str))
    (store / "complete").touch()
    return uri, artifacts


# ------------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pin(cpus: set[int]) -> Callable[[], None]:
    usable = cpus & os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()

    def apply() -> None:
        os.setsid()
        if usable:
            os.sched_setaffinity(0, usable)

    return apply


def start(cmd: list[str], env: dict[str, str], log: Path, cpus: set[int]) -> subprocess.Popen:
    handle = log.open("w")
    return subprocess.Popen(
        cmd, env=env, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT, preexec_fn=_pin(cpus)
    )


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session (setsid): uvicorn and children
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def wait_ready(proc: subprocess.Popen, url: str, log: Path, timeout: float = 180.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            raise RuntimeError(f"exited with {proc.returncode} before ready:\n{tail}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"not ready after {timeout:.0f} s ({url}); log: {log}")


# ------------------------------------------------------------------------------- results


@dataclass
class Result:
    target: str
    phase: str
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    throughput: float = 0.0  # requests/s (rows/s for batches)
    unit: str = "tx/s"
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    notes: str = ""
    error_kinds: dict[str, int] = field(default_factory=dict)


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def table(results: list[Result]) -> str:
    lines = [
        "| Target | Phase | Throughput | p50 ms | p99 ms | max ms | Requests | Errors | Notes |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.target} | {r.phase} | {r.throughput:,.0f} {r.unit} | {_ms(r.p50_ms)} | "
            f"{_ms(r.p99_ms)} | {_ms(r.max_ms)} | {r.requests:,} | {r.errors:,} | {r.notes} |"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------------- (a) fixed rate


def _score_body(tid: int) -> bytes:
    return (
        f'{{"transaction_id":{tid},"tx_datetime":"{WHEN}","customer_id":{tid % CUSTOMERS},'
        f'"terminal_id":{(tid * 7) % TERMINALS},"tx_amount":{10 + (tid % 997) / 10:.2f}}}'
    ).encode()


async def _open_loop(
    url: str,
    headers: dict[str, str],
    body: Callable[[int], bytes],
    rate: float,
    seconds: float,
    connections: int,
) -> tuple[np.ndarray, np.ndarray, dict[str, int], float]:
    """Send `rate` requests/s on a fixed schedule; latency counts from the scheduled time."""
    import aiohttp

    n = int(rate * seconds)
    latency = np.full(n, np.nan)
    status = np.zeros(n, dtype=np.int32)
    kinds: dict[str, int] = {}
    timeout = aiohttp.ClientTimeout(total=10)
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(i: int, scheduled: float, payload: bytes) -> None:
            try:
                async with session.post(url, data=payload, headers=headers) as response:
                    await response.read()
                    status[i] = response.status
                    if response.status != 200:
                        kinds[f"HTTP {response.status}"] = (
                            kinds.get(f"HTTP {response.status}", 0) + 1
                        )
            except Exception as e:  # noqa: BLE001 - every failure is a counted error
                kinds[type(e).__name__] = kinds.get(type(e).__name__, 0) + 1
            latency[i] = time.perf_counter() - scheduled

        tasks = []
        begin = time.perf_counter() + 0.05
        for i in range(n):
            payload = body(i)
            scheduled = begin + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, scheduled, payload)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - begin
    return latency * 1000.0, status, kinds, elapsed


def fixed_rate(
    target: str,
    url: str,
    headers: dict[str, str],
    body: Callable[[int], bytes],
    rate: float,
    seconds: float,
    connections: int = 64,
) -> Result:
    """Open loop at `rate`/s over at most `connections` connections (a client's bounded pool:
    when the server falls behind, requests wait for a connection, and that wait counts)."""
    load = os.getloadavg()[0]
    try:
        import uvloop

        runner: Callable = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    latency, status, kinds, elapsed = runner(
        _open_loop(url, headers, body, rate, seconds, connections)
    )
    ok = status == 200
    late = float(np.mean(latency > TARGET_P99_MS)) * 100
    return Result(
        target=target,
        phase=f"(a) fixed {rate:.0f} tx/s, {seconds:.0f} s, open loop",
        requests=len(status),
        errors=int((~ok).sum()),
        seconds=elapsed,
        throughput=ok.sum() / elapsed,
        p50_ms=float(np.percentile(latency, 50)),
        p99_ms=float(np.percentile(latency, 99)),
        max_ms=float(np.max(latency)),
        notes=f"{late:.2f} % over {TARGET_P99_MS:.0f} ms; load avg {load:.1f}→"
        f"{os.getloadavg()[0]:.1f}",
        error_kinds=kinds,
    )


# ------------------------------------------------------------------------------- (b) wrk


SCORE_LUA = """
local n = 0
local ids = 0
function setup(thread)
  thread:set("thread_id", ids)
  ids = ids + 1
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(token)s"
function request()
  n = n + 1
  local id = %(base)d + thread_id * 100000000 + n
  local body = string.format(
    '{"transaction_id":%%d,"tx_datetime":"%(when)s","customer_id":%%d,' ..
    '"terminal_id":%%d,"tx_amount":%%.2f}',
    id, id %% %(customers)d, (id * 7) %% %(terminals)d, 10 + (id %% 997) / 10)
  return wrk.format(nil, "/v1/score", nil, body)
end
"""

BODIES_LUA = """
local bodies = {%(bodies)s}
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
function request()
  n = n + 1
  return wrk.format(nil, "/invocations", nil, bodies[(n %% #bodies) + 1])
end
"""


def _wrk_ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def run_wrk(
    target: str, base_url: str, script: str, connections: int, seconds: int, workdir: Path
) -> Result:
    lua = workdir / f"{uuid.uuid4().hex}.lua"
    lua.write_text(script)
    load = os.getloadavg()[0]
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(lua),
        base_url,
    ]
    out = subprocess.run(
        cmd, capture_output=True, text=True, check=True, preexec_fn=_pin(LOAD_CPUS)
    ).stdout
    total = int(re.search(r"(\d+) requests in ([\d.]+)(\w+)", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    pct = dict(re.findall(r"^\s+(\d+)%\s+(\S+)$", out, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (
        sum(int(x) for x in sock.groups()) if sock else 0
    )
    maximum = re.search(r"Latency\s+\S+\s+\S+\s+(\S+)", out)
    return Result(
        target=target,
        phase=f"(b) max throughput, wrk -c{connections}, {seconds} s, closed loop",
        requests=total,
        errors=errors,
        seconds=seconds,
        throughput=rps,
        p50_ms=_wrk_ms(pct["50"]),
        p99_ms=_wrk_ms(pct["99"]),
        max_ms=_wrk_ms(maximum.group(1)) if maximum else None,
        notes=f"p90 {_wrk_ms(pct['90']):.2f} ms; load avg {load:.1f}→{os.getloadavg()[0]:.1f}",
    )


# ------------------------------------------------------------------------------- (c) batches


def batches(
    target: str, url: str, headers: dict[str, str], body: Callable[[int], bytes], seconds: float
) -> Result:
    """Batches of BATCH_SIZE rows, one after another on one connection, for `seconds`."""
    import httpx

    latencies: list[float] = []
    errors = 0
    with httpx.Client(timeout=60, headers=headers) as client:
        client.post(url, content=body(10**6))  # warm-up, not counted
        begin = time.perf_counter()
        i = 0
        while time.perf_counter() - begin < seconds:
            payload = body(i)
            t0 = time.perf_counter()
            r = client.post(url, content=payload)
            latencies.append((time.perf_counter() - t0) * 1000)
            errors += r.status_code != 200
            i += 1
        elapsed = time.perf_counter() - begin
    lat = np.array(latencies)
    return Result(
        target=target,
        phase=f"(c) batches of {BATCH_SIZE}, sequential, {seconds:.0f} s",
        requests=len(lat),
        errors=errors,
        seconds=elapsed,
        throughput=(len(lat) - errors) * BATCH_SIZE / elapsed,
        unit="rows/s",
        p50_ms=float(np.percentile(lat, 50)),
        p99_ms=float(np.percentile(lat, 99)),
        max_ms=float(lat.max()),
        notes="latency per batch",
    )


# ------------------------------------------------------------------------------- phases


def drain(base: str, timeout: float = 120.0) -> None:
    """Wait until an overloaded server has worked off its backlog (/healthz answers fast)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        t0 = time.perf_counter()
        try:
            httpx.get(f"{base}/healthz", timeout=30)
            if time.perf_counter() - t0 < 0.05:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)


def server_counts(base: str, headers: dict[str, str]) -> tuple[float, float, float] | None:
    """The service's own counters: (/v1/score within 10 ms, /v1/score total, store errors)."""
    import httpx

    try:
        text = httpx.get(f"{base}/metrics", headers=headers, timeout=60).text
    except httpx.HTTPError:
        return None

    def value(pattern: str) -> float:
        found = re.search(pattern, text, re.M)
        return float(found.group(1)) if found else 0.0

    return (
        value(
            r'^fraud_api_request_duration_seconds_bucket\{endpoint="/v1/score",le="0\.01"\} (\S+)'
        ),
        value(r'^fraud_api_request_duration_seconds_count\{endpoint="/v1/score"\} (\S+)'),
        value(r"^fraud_feature_store_errors_total (\S+)"),
    )


def server_view(
    before: tuple[float, float, float] | None, after: tuple[float, float, float] | None
) -> str:
    """What the service's histogram saw during one phase (the difference of two scrapes)."""
    if before is None or after is None:
        return "/metrics unavailable"
    within, total, errors = (a - b for a, b in zip(after, before, strict=True))
    if not total:
        return "no /v1/score in the server histogram"
    return (
        f"server histogram: {within / total:.2%} of {total:,.0f} /v1/score within 10 ms; "
        f"feature store errors {errors:,.0f}"
    )


def phases(args: argparse.Namespace) -> list[tuple[float, float]]:
    """(rate, seconds) of the fixed-rate phases: the target rate, then any --extra-rates."""
    return [(args.rate, args.duration)] + [(r, args.extra_duration) for r in args.extra_rates]


def bench_service(
    args: argparse.Namespace, uri: str, artifacts: str, workdir: Path
) -> list[Result]:
    import redis

    port = free_port()
    prefix = f"bench-serving:{uuid.uuid4().hex}:"
    env = {
        **os.environ,
        "FRAUD_MLFLOW_TRACKING_URI": uri,
        "FRAUD_MLFLOW_ARTIFACTS": artifacts,
        "FRAUD_MODEL_NAME": MODEL_NAME,
        "FRAUD_REDIS_URL": args.redis_url,
        "FRAUD_REDIS_PREFIX": prefix,
        "FRAUD_API_TOKEN": TOKEN,
        "FRAUD_ORIGIN_DATE": ORIGIN.isoformat(),
        "FRAUD_MODEL_POLL_SECONDS": "30",
    }
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "fraud_assets.serving.app:app_from_env",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(args.workers),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    log = OUT / "service.log"
    cpus = SERVER_CPUS if args.workers == 1 else SERVER_CPUS | LOAD_CPUS
    proc = start(cmd, env, log, cpus)
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    target = f"service ({args.workers} worker{'s' if args.workers > 1 else ''}, Redis)"
    results: list[Result] = []
    try:
        t0 = time.perf_counter()
        wait_ready(proc, f"{base}/readyz", log)
        print(f"service ready on :{port} in {time.perf_counter() - t0:.1f} s (prefix {prefix})")
        # Warm-up: the first calls load CatBoost's code paths and open Redis connections.
        fixed_rate(
            target, f"{base}/v1/score", headers, lambda i: _score_body(9 * 10**12 + i), 50, 3
        )
        for k, (rate, seconds) in enumerate(phases(args)):
            before = server_counts(base, headers)
            res = fixed_rate(
                target,
                f"{base}/v1/score",
                headers,
                lambda i, k=k: _score_body((10 + k) * 10**11 + i),
                rate,
                seconds,
                args.max_connections,
            )
            results.append(res)
            drain(base)
            if args.workers == 1:  # with several workers each scrape reaches any one of them
                res.notes += "; " + server_view(before, server_counts(base, headers))
            print(table([res]), res.error_kinds or "", flush=True)

        lua = SCORE_LUA % {
            "token": TOKEN,
            "base": 2 * 10**12,
            "when": WHEN,
            "customers": CUSTOMERS,
            "terminals": TERMINALS,
        }
        res = run_wrk(target, base, lua, args.connections, args.wrk_seconds, workdir)
        results.append(res)
        print(table([res]), flush=True)

        def batch_body(b: int) -> bytes:  # fresh transaction ids in every batch
            first = 3 * 10**12 + b * BATCH_SIZE
            items = ",".join(_score_body(first + k).decode() for k in range(BATCH_SIZE))
            return f'{{"transactions":[{items}]}}'.encode()

        res = batches(target, f"{base}/v1/score/batch", headers, batch_body, args.batch_seconds)
        results.append(res)
        print(table([res]), flush=True)
        if proc.poll() is not None:
            raise RuntimeError(f"the service died during the run, see {log}")
    finally:
        stop(proc)
        client = redis.Redis.from_url(args.redis_url)
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i : i + 1000])
        print(f"deleted {len(keys)} Redis keys under {prefix}")
    return results


def bench_mlflow(
    args: argparse.Namespace, uri: str, workdir: Path
) -> tuple[list[Result], str | None]:
    import polars as pl

    from fraud_assets.features.spec import FEATURE_COLUMNS

    port = free_port()
    bin_dir = str(Path(sys.executable).parent)
    # It runs `bash -c "exec uvicorn ..."`: the venv's bin must be on PATH (else exit 127).
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
    }
    mlflow_bin = str(Path(bin_dir) / "mlflow")
    cmd = [
        mlflow_bin,
        "models",
        "serve",
        "-m",
        f"models:/{MODEL_NAME}/1",
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-w",
        "1",
    ]
    log = OUT / "mlflow-serve.log"
    proc = start(cmd, env, log, SERVER_CPUS)
    base = f"http://127.0.0.1:{port}"
    target = "mlflow models serve (1 worker, features given)"
    results: list[Result] = []
    try:
        try:
            t0 = time.perf_counter()
            wait_ready(proc, f"{base}/ping", log)
            print(f"mlflow models serve ready on :{port} in {time.perf_counter() - t0:.1f} s")
        except RuntimeError as e:
            return results, f"`mlflow models serve` did not start: {e}"
        rows = pl.read_parquet(OUT / "mlflow" / "feature_rows.parquet").select(FEATURE_COLUMNS)
        data = rows.rows()

        def split(chunk: list[tuple]) -> bytes:
            payload = {"dataframe_split": {"columns": FEATURE_COLUMNS, "data": chunk}}
            return json.dumps(payload).encode()

        singles = [split([row]) for row in data[:1000]]
        headers = {"Content-Type": "application/json"}
        fixed_rate(target, f"{base}/invocations", headers, lambda i: singles[i % 1000], 50, 3)
        for rate, seconds in phases(args):
            res = fixed_rate(
                target,
                f"{base}/invocations",
                headers,
                lambda i: singles[i % len(singles)],
                rate,
                seconds,
                args.max_connections,
            )
            results.append(res)
            print(table([res]), res.error_kinds or "", flush=True)
            drain(base)

        lua_bodies = ",".join("[=[" + b.decode() + "]=]" for b in singles[:200])
        res = run_wrk(
            target,
            base,
            BODIES_LUA % {"bodies": lua_bodies},
            args.connections,
            args.wrk_seconds,
            workdir,
        )
        results.append(res)
        print(table([res]), flush=True)

        big = [split(data[i : i + BATCH_SIZE]) for i in range(0, len(data), BATCH_SIZE)]
        res = batches(
            target,
            f"{base}/invocations",
            headers,
            lambda b: big[b % len(big)],
            args.batch_seconds,
        )
        results.append(res)
        print(table([res]), flush=True)
    finally:
        stop(proc)
    return results, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=300.0, help="fixed-rate phase, s")
    parser.add_argument("--quick", action="store_true", help="20 s fixed-rate phases")
    parser.add_argument("--rate", type=float, default=400.0, help="fixed rate, tx/s")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument(
        "--max-connections", type=int, default=64, help="connection pool of the fixed-rate client"
    )
    parser.add_argument(
        "--extra-rates", type=float, nargs="*", default=[], help="more fixed rates, e.g. 100 200"
    )
    parser.add_argument("--extra-duration", type=float, default=60.0, help="s per extra rate")
    parser.add_argument("--wrk-seconds", type=int, default=20)
    parser.add_argument("--batch-seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers (>1: unpinned)")
    parser.add_argument("--redis-url", default=REDIS_URL)
    parser.add_argument("--skip-mlflow", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.duration = min(args.duration, 20.0)
        args.batch_seconds = min(args.batch_seconds, 10.0)
        args.extra_duration = min(args.extra_duration, 20.0)
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")

    OUT.mkdir(parents=True, exist_ok=True)
    if hasattr(os, "sched_setaffinity") and os.sched_getaffinity(0) >= LOAD_CPUS:
        os.sched_setaffinity(0, LOAD_CPUS)  # this process is the fixed-rate load generator
    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"server pinned to CPU {sorted(SERVER_CPUS)}, load generators to CPU {sorted(LOAD_CPUS)}"
    )
    print("machine:", machine, f"; load average {os.getloadavg()}")
    t0 = time.perf_counter()
    uri, artifacts = ensure_model()
    print(f"model ready in {time.perf_counter() - t0:.1f} s: {uri}")
    print((OUT / "mlflow" / "model.json").read_text())

    results: list[Result] = []
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        workdir = Path(tmp)
        results += bench_service(args, uri, artifacts, workdir)
        if not args.skip_mlflow:
            mlflow_results, problem = bench_mlflow(args, uri, workdir)
            results += mlflow_results
            if problem:
                problems.append(problem)

    print()
    print(f"## Scoring service benchmark ({dt.datetime.now():%Y-%m-%d %H:%M})")
    print()
    print(f"Machine: {machine}; load average at the end {os.getloadavg()[0]:.1f}.")
    print()
    print(table(results))
    print()
    fixed = next(r for r in results if r.phase.startswith(f"(a) fixed {args.rate:.0f} "))
    peak = next(r for r in results if r.phase.startswith("(b)"))
    print(
        f"Targets: >= {TARGET_RPS:,} single tx/s: {peak.throughput:,.0f} -> "
        f"{'MET' if peak.throughput >= TARGET_RPS else 'NOT MET'}; "
        f"p99 <= {TARGET_P99_MS:.0f} ms at {args.rate:.0f} tx/s: {fixed.p99_ms:.2f} ms -> "
        f"{'MET' if fixed.p99_ms <= TARGET_P99_MS and not fixed.errors else 'NOT MET'} "
        f"({fixed.errors} errors)."
    )
    print(
        "Caveat: a 2-core box; the server is pinned to one core, the load generators to the "
        "other, but Redis and loopback networking share both; a load average above ~2 means "
        "other work competed too. (a) latencies count from the "
        "scheduled send time (open loop); (b) is wrk's closed loop. mlflow models serve gets "
        "precomputed features: no Redis, no feature computation, no auth."
    )
    for problem in problems:
        print("Problem:", problem)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (OUT / f"results-{stamp}.json").write_text(
        json.dumps(
            {
                "machine": machine,
                "args": vars(args),
                "results": [asdict(r) for r in results],
                "problems": problems,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
