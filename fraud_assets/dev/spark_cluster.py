"""A Spark standalone cluster on loopback: one master and some workers, from the jars pyspark ships.

For the tests and benchmarks (and a laptop): `spark-class` runs the master and each worker in the
foreground as our child processes, so stopping them is stopping those processes. A deployment
points `FRAUD_SPARK_MASTER` at its own cluster instead (README, "Spark on a cluster").
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

LOOPBACK = "127.0.0.1"
START_SECONDS = 90


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


@dataclass
class StandaloneCluster:
    folder: Path
    workers: int = 2
    cores_per_worker: int = 1
    memory_per_worker: str = "1g"
    port: int = field(default_factory=free_port)
    ui_port: int = field(default_factory=free_port)
    _processes: list[subprocess.Popen] = field(default_factory=list)
    _logs: list[IO[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"spark://{LOOPBACK}:{self.port}"

    def session_config(self) -> dict[str, str]:
        """What a driver on this host needs to reach the cluster and be reached back."""
        return {
            "spark.driver.host": LOOPBACK,
            "spark.driver.bindAddress": LOOPBACK,
            "spark.executor.memory": "768m",
            "spark.executor.cores": str(self.cores_per_worker),
            "spark.ui.enabled": "false",
        }

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            SPARK_HOME=str(spark_home()),
            SPARK_LOCAL_IP=LOOPBACK,
            SPARK_LOCAL_DIRS=str(self.folder / "local"),
            SPARK_WORKER_DIR=str(self.folder / "work"),
            SPARK_NO_DAEMONIZE="1",
        )
        return env

    def _spawn(self, name: str, *args: str) -> None:
        log = open(self.folder / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        command = [str(spark_home() / "bin" / "spark-class"), *args]
        self._processes.append(
            subprocess.Popen(command, env=self._env(), stdout=log, stderr=subprocess.STDOUT)
        )

    def start(self) -> StandaloneCluster:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._spawn(
            "master",
            "org.apache.spark.deploy.master.Master",
            "--host", LOOPBACK,
            "--port", str(self.port),
            "--webui-port", str(self.ui_port),
        )  # fmt: skip
        for i in range(self.workers):
            self._spawn(
                f"worker-{i}",
                "org.apache.spark.deploy.worker.Worker",
                "--host", LOOPBACK,
                "--cores", str(self.cores_per_worker),
                "--memory", self.memory_per_worker,
                "--webui-port", str(free_port()),
                self.url,
            )  # fmt: skip
        self._wait_for_workers()
        return self

    def alive_workers(self) -> int:
        try:
            with urllib.request.urlopen(f"http://{LOOPBACK}:{self.ui_port}/json/", timeout=2) as r:
                return int(json.load(r).get("aliveworkers", 0))
        except OSError:
            return 0

    def _wait_for_workers(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self._processes):
                break
            if self.alive_workers() >= self.workers:
                return
            time.sleep(0.5)
        self.stop()
        logs = "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}"
            for p in sorted(self.folder.glob("*.log"))
        )
        raise RuntimeError(f"Spark standalone cluster did not start:\n{logs}")

    def stop(self) -> None:
        for process in reversed(self._processes):  # workers first, then the master
            if process.poll() is None:
                process.terminate()
        for process in self._processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()


@dataclass
class SparkConnectServer:
    """Spark Connect's server (`sc://` clients) as our child process, on a Spark master of its
    own (`local[2]` by default, or a standalone cluster's URL): its executors run our Python."""

    folder: Path
    master: str = "local[2]"
    port: int = field(default_factory=free_port)
    _process: subprocess.Popen | None = None
    _log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"sc://{LOOPBACK}:{self.port}"

    def start(self) -> SparkConnectServer:
        import sys

        self.folder.mkdir(parents=True, exist_ok=True)
        self._log = open(self.folder / "connect.log", "wb")  # noqa: SIM115 - closed in stop()
        python = os.environ.get("PYSPARK_PYTHON", sys.executable)
        command = [
            str(spark_home() / "bin" / "spark-submit"),
            "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
            "--name", "Spark Connect server",
            "--master", self.master,
            "--conf", f"spark.connect.grpc.binding.address={LOOPBACK}",
            "--conf", f"spark.connect.grpc.binding.port={self.port}",
            "--conf", "spark.executorEnv.POLARS_MAX_THREADS=1",
            "--conf", "spark.ui.enabled=false",
        ]  # fmt: skip
        env = dict(os.environ, SPARK_HOME=str(spark_home()), SPARK_LOCAL_IP=LOOPBACK)
        # The server's local executors start Python workers with PYSPARK_PYTHON: ours.
        env.update(PYSPARK_PYTHON=python, SPARK_LOCAL_DIRS=str(self.folder / "local"))
        self._process = subprocess.Popen(
            command, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline and self._process.poll() is None:
            try:
                with socket.create_connection((LOOPBACK, self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        log = (self.folder / "connect.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"Spark Connect server did not start:\n{log}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None


@contextmanager
def standalone_cluster(folder: Path, workers: int = 2) -> Iterator[StandaloneCluster]:
    cluster = StandaloneCluster(folder, workers=workers).start()
    try:
        yield cluster
    finally:
        cluster.stop()
