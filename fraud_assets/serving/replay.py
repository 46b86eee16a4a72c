"""Replay raw transactions against a running scoring API: what `make demo` measures.

Requests go one transaction at a time from a few client threads, as card terminals would send
them; the figures are end-to-end HTTP round trips on the same machine.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import polars as pl

from fraud_assets.rawdata.format import COLUMNS


@dataclass
class ReplayResult:
    sent: int
    seconds: float
    latencies_ms: np.ndarray
    statuses: Counter = field(default_factory=Counter)
    decisions: Counter = field(default_factory=Counter)
    model_versions: Counter = field(default_factory=Counter)

    @property
    def per_second(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if len(self.latencies_ms) else 0.0


def raw_requests(path: str | Path) -> list[dict]:
    """The well-formed rows of a raw batch file as API requests (raw ids, ISO timestamps)."""
    frame = pl.read_csv(
        path,
        has_header=False,
        skip_rows=1,
        new_columns=COLUMNS,
        schema_overrides={"tx_datetime": pl.String},
        ignore_errors=True,
        truncate_ragged_lines=True,
    ).drop_nulls(["transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount"])
    frame = frame.filter(
        (pl.col("tx_amount") > 0)
        & (pl.col("customer_id") >= 0)
        & (pl.col("terminal_id") >= 0)
        & ~pl.col("tx_datetime").str.contains("24:00:00")
    ).unique("transaction_id", keep="first", maintain_order=True)
    return [
        {
            "transaction_id": r["transaction_id"],
            "tx_datetime": r["tx_datetime"].replace(" ", "T"),
            "customer_id": r["customer_id"],
            "terminal_id": r["terminal_id"],
            "tx_amount": r["tx_amount"],
        }
        for r in frame.iter_rows(named=True)
    ]


def replay(base_url: str, requests: list[dict], token: str | None = None, clients: int = 4):
    """POST each request to /v1/score from `clients` threads; latency per request."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    latencies = np.zeros(len(requests))
    result = ReplayResult(sent=len(requests), seconds=0.0, latencies_ms=latencies)
    lock = threading.Lock()
    local = threading.local()

    def send(i: int) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(base_url=base_url, headers=headers, timeout=10)
        start = time.perf_counter()
        response = client.post("/v1/score", json=requests[i])
        latencies[i] = (time.perf_counter() - start) * 1000
        body = response.json() if response.status_code == 200 else {}
        with lock:
            result.statuses[response.status_code] += 1
            if body:
                result.decisions[f"{body['decision']} ({body['decided_by']})"] += 1
                result.model_versions[body.get("model_version")] += 1

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(send, range(len(requests))))
    result.seconds = time.perf_counter() - started
    return result
