"""A real Dagster UI (webserver + daemon) on a temp instance with ingested batches, and Chromium.

`dagster_ui` does what `make demo` + `make ui` do, in temp folders: simulate three small days
into a landing zone, tick the landing sensor in process (each batch becomes a partition and gets
one `ingest_batch` run, drift report included), then start `fraud reports` (the HTML drift
reports the UI links to, FRAUD_REPORTS_URL) and `dagster dev -w workspace.yaml` on free ports
with the same environment and wait until both answer, the code location is loaded and the
daemons are healthy. Both process groups are killed at teardown.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SCREENSHOTS = ROOT / "screenshots"
CHROMIUM = os.environ.get("FRAUD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
CODE_LOCATION = "fraud_assets.definitions:defs"  # workspace.yaml: module + attribute
STARTUP_TIMEOUT_S = 120
PSEUDONYM_KEY = "browser-test-pseudonym-key"


def _foreign(name: str) -> bool:
    """Variables of the caller's environment that could point the UI away from the temp dirs."""
    return name.startswith("FRAUD_") or name in ("DAGSTER_HOME", "MLFLOW_TRACKING_URI")


@dataclass
class DagsterUI:
    url: str
    reports_url: str  # FRAUD_REPORTS_URL: `fraud reports`, which the drift report links point to
    home: Path
    data_dir: Path
    batches: list[str]
    clean_rows: dict[str, int]  # batch -> dagster/row_count of clean_transactions
    log: Path
    process: subprocess.Popen

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 10) -> dict:
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ui_env(home: Path, data_dir: Path, reports_url: str) -> dict[str, str]:
    return {
        "DAGSTER_HOME": str(home),
        "FRAUD_DATA_DIR": str(data_dir),
        "FRAUD_REPORTS_URL": reports_url,  # baked into drift_report's `report` link metadata
        "FRAUD_ENV": "dev",
        "FRAUD_PSEUDONYM_KEY": PSEUDONYM_KEY,
        "FRAUD_FEATURE_ENGINE": "polars",
    }


def prepare_instance(
    root: Path, reports_url: str, days: int = 3
) -> tuple[Path, Path, dict[str, int]]:
    """Temp DAGSTER_HOME + FRAUD_DATA_DIR with `days` batches landed and ingested, as the demo.

    Returns the Dagster home, the data dir and each batch's clean row count.
    """
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    from fraud_assets.definitions import build_definitions
    from fraud_assets.inprocess import tick_sensor
    from tests.conftest import write_days

    home, data_dir = root / "dagster_home", root / "data"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    summary = write_days(data_dir / "landing", days=days, dirty=0.01)

    with pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if _foreign(n)]:
            mp.delenv(name)
        for name, value in _ui_env(home, data_dir, reports_url).items():
            mp.setenv(name, value)
        defs = build_definitions()  # resources from the environment, as the code location's
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
            outcome = tick_sensor(defs, instance, "landing_sensor", log_level="ERROR")
            assert outcome.succeeded == summary.batches, f"ingest failed: {outcome.failed}"
            clean_rows = {b: _row_count(instance, "clean_transactions", b) for b in summary.batches}
    return home, data_dir, clean_rows


def _row_count(instance, asset: str, partition: str) -> int:  # noqa: ANN001
    import dagster as dg

    record = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1
    ).records[0]
    return int(record.asset_materialization.metadata["dagster/row_count"].value)


@contextlib.contextmanager
def running_dagster_ui(root: Path, days: int = 3) -> Iterator[DagsterUI]:
    reports_port = _free_port()
    reports_url = f"http://127.0.0.1:{reports_port}"
    home, data_dir, clean_rows = prepare_instance(root, reports_url, days)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not _foreign(k)}
    env.update(_ui_env(home, data_dir, reports_url))
    log = root / "dagster_dev.log"
    reports_log = root / "fraud_reports.log"
    reports = _start([str(BIN / "fraud"), "reports", "--port", str(reports_port)], env, reports_log)
    try:
        command = ["dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]
        # Its own process group: webserver, daemon, code server, run workers.
        process = _start([str(BIN / "dagster"), *command], env, log)
        ui = DagsterUI(
            f"http://127.0.0.1:{port}",
            reports_url,
            home,
            data_dir,
            list(clean_rows),
            clean_rows,
            log,
            process,
        )
        try:
            _wait_for_reports(reports_url, reports, reports_log)
            _wait_until_ready(ui)
            yield ui
        finally:
            _stop(process)
    finally:
        _stop(reports)


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as a whole by _stop
        )


def _wait_for_reports(url: str, process: subprocess.Popen, log: Path) -> None:
    """`fraud reports` answers its index page (which lists the lake's reports)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"fraud reports exited ({process.returncode}):\n{tail}")
        try:
            with urllib.request.urlopen(f"{url}/", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    tail = log.read_text(errors="replace")[-4000:]
    raise RuntimeError(f"fraud reports not ready after {STARTUP_TIMEOUT_S} s:\n{tail}")


def _location_loaded(ui: DagsterUI) -> bool:
    data = ui.graphql(
        """{ workspaceOrError { __typename ... on Workspace { locationEntries {
              name loadStatus locationOrLoadError { __typename } } } } }"""
    )
    for entry in data["workspaceOrError"].get("locationEntries") or []:
        if entry["name"] == CODE_LOCATION and entry["loadStatus"] == "LOADED":
            kind = (entry["locationOrLoadError"] or {}).get("__typename")
            if kind == "PythonError":
                raise RuntimeError(f"the code location failed to load:\n{ui.log_tail()}")
            return kind == "RepositoryLocation"
    return False


def _daemons_healthy(ui: DagsterUI) -> bool:
    data = ui.graphql("{ instance { daemonHealth { allDaemonStatuses { daemonType healthy } } } }")
    statuses = data["instance"]["daemonHealth"]["allDaemonStatuses"]
    healthy = {s["daemonType"] for s in statuses if s["healthy"]}
    return {"SENSOR", "BACKFILL", "QUEUED_RUN_COORDINATOR"} <= healthy


def _wait_until_ready(ui: DagsterUI) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    waiting_for = "the webserver"
    while time.monotonic() < deadline:
        if ui.process.poll() is not None:
            raise RuntimeError(f"dagster dev exited ({ui.process.returncode}):\n{ui.log_tail()}")
        try:
            if waiting_for == "the webserver":
                with urllib.request.urlopen(f"{ui.url}/server_info", timeout=5) as response:
                    json.load(response)
                waiting_for = "the code location"
            if waiting_for == "the code location" and _location_loaded(ui):
                # Mark the "Join the Dagster community" first-visit dialog as seen on this
                # instance, so that it never covers a page under test.
                ui.graphql("mutation { setNuxSeen }")
                waiting_for = "the daemons"
            if waiting_for == "the daemons" and _daemons_healthy(ui):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
            pass
        time.sleep(0.5)
    raise RuntimeError(
        f"dagster dev: {waiting_for} not ready after {STARTUP_TIMEOUT_S} s:\n{ui.log_tail()}"
    )


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the whole group (dagster dev shuts its children down), then SIGKILL leftovers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=20)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


@pytest.fixture(scope="module")
def dagster_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterUI]:
    with running_dagster_ui(tmp_path_factory.mktemp("dagster_ui")) as ui:
        yield ui


@pytest.fixture(scope="module")
def browser():  # noqa: ANN201 - playwright's types are imported lazily
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: the browser tests need it. "
            "Install it with `apt-get install -y chromium` (or point FRAUD_CHROMIUM at one).",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


_REPORTS = pytest.StashKey[dict]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # noqa: ANN201
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


@pytest.fixture
def page(browser, dagster_ui: DagsterUI, request: pytest.FixtureRequest):  # noqa: ANN001, ANN201
    context = browser.new_context(viewport={"width": 1600, "height": 1000}, base_url=dagster_ui.url)
    context.set_default_timeout(30_000)
    page = context.new_page()
    yield page
    call = request.node.stash.get(_REPORTS, {}).get("call")
    if call is not None and call.failed:  # keep what the browser showed when the test failed
        SCREENSHOTS.mkdir(exist_ok=True)
        path = SCREENSHOTS / f"FAILED_{request.node.name}.png"
        with contextlib.suppress(Exception):
            page.screenshot(path=str(path), full_page=True)
    context.close()


@pytest.fixture
def screenshot(page):  # noqa: ANN001, ANN201
    """screenshot("name") saves a full-page screenshots/<name>.png and returns its path."""
    SCREENSHOTS.mkdir(exist_ok=True)

    def take(name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
