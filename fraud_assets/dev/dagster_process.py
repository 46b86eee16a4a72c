"""A real `dg dev` (webserver, daemon, code server) in its own process group, driven over GraphQL.

The browser tests and `benchmarks/bench_orchestration.py` start one on a temporary instance, wait
until the webserver answers, the code location is loaded and the daemons are healthy, and kill
the whole group at the end. Standard library only, so it can drive any checkout's `dg`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

CODE_LOCATION = "fraud_assets.definitions:defs"  # workspace.yaml: module + attribute
STARTUP_TIMEOUT_S = 180
REQUIRED_DAEMONS = frozenset({"SENSOR", "BACKFILL", "QUEUED_RUN_COORDINATOR"})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_process(
    command: list[str], cwd: Path, env: dict[str, str], log: Path
) -> subprocess.Popen:
    """Output to `log`; its own process group, so `stop_process` ends it with its children."""
    with log.open("wb") as out:
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_process(process: subprocess.Popen) -> None:
    """SIGTERM the whole group (dg dev shuts its children down), then SIGKILL leftovers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=20)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


@dataclass
class DagsterDev:
    url: str
    log: Path
    process: subprocess.Popen
    extra: dict = field(default_factory=dict)

    @classmethod
    def start(cls, dg: Path, repo: Path, env: dict[str, str], log: Path) -> DagsterDev:
        port = free_port()
        command = [str(dg), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]
        return cls(f"http://127.0.0.1:{port}", log, start_process(command, repo, env, log))

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 30) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.load(response)
        if payload.get("errors"):
            raise RuntimeError(f"GraphQL errors: {payload['errors']}")
        return payload["data"]

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def location_loaded(self) -> bool:
        data = self.graphql(
            """{ workspaceOrError { __typename ... on Workspace { locationEntries {
                  name loadStatus locationOrLoadError { __typename } } } } }"""
        )
        for entry in data["workspaceOrError"].get("locationEntries") or []:
            if entry["name"] == CODE_LOCATION and entry["loadStatus"] == "LOADED":
                kind = (entry["locationOrLoadError"] or {}).get("__typename")
                if kind == "PythonError":
                    raise RuntimeError(f"the code location failed to load:\n{self.log_tail()}")
                return kind == "RepositoryLocation"
        return False

    def daemons_healthy(self) -> bool:
        data = self.graphql(
            "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy } } } }"
        )
        statuses = data["instance"]["daemonHealth"]["allDaemonStatuses"]
        return {s["daemonType"] for s in statuses if s["healthy"]} >= REQUIRED_DAEMONS

    def wait_until_ready(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        waiting_for = "the webserver"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dg dev exited ({self.process.returncode}):\n{self.log_tail()}")
            try:
                if waiting_for == "the webserver":
                    with urllib.request.urlopen(f"{self.url}/server_info", timeout=5) as response:
                        json.load(response)
                    waiting_for = "the code location"
                if waiting_for == "the code location" and self.location_loaded():
                    # The "Join the Dagster community" first-visit dialog: seen, never in the way.
                    self.graphql("mutation { setNuxSeen }")
                    waiting_for = "the daemons"
                if waiting_for == "the daemons" and self.daemons_healthy():
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"dg dev: {waiting_for} not ready after {timeout} s:\n{self.log_tail()}")

    def stop(self) -> None:
        stop_process(self.process)
