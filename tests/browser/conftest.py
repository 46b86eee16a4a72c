"""A real Dagster UI (webserver + daemon) on a temp instance with ingested batches, and Chromium.

`dagster_ui` does what `make demo` + `make ui` do, in temp folders: simulate three small days
into a landing zone, tick the landing sensor in process (the three batches land together and
go as one ranged `ingest_batch` run, drift reports included), then start `fraud reports` (the
HTML drift reports the UI links to, FRAUD_REPORTS_URL) and `dg dev -w workspace.yaml` on free
ports with the same environment and wait until both answer, the code location is loaded and the
daemons are healthy. Both process groups are killed at teardown.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fraud_assets.dev import instance as dagster_instance
from fraud_assets.dev.dagster_process import DagsterDev, free_port, start_process, stop_process

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
STARTUP_TIMEOUT_S = 120
EXPECT_TIMEOUT_MS = 20_000
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
    dev: DagsterDev

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 10) -> dict:
        return self.dev.graphql(query, variables, timeout)

    def log_tail(self, chars: int = 4000) -> str:
        return self.dev.log_tail(chars)


def _ui_env(home: Path, data_dir: Path, reports_url: str) -> dict[str, str]:
    return {
        "DAGSTER_HOME": str(home),
        "FRAUD_DATA_DIR": str(data_dir),
        "FRAUD_REPORTS_URL": reports_url,  # baked into drift_report's `report` link metadata
        "FRAUD_ENV": "dev",
        "FRAUD_PSEUDONYM_KEY": PSEUDONYM_KEY,
        "FRAUD_FEATURE_ENGINE": "polars",
        "FRAUD_BATCHES_PER_RUN": "2",  # a backfill of the 3 batches is 2 ranged runs
    }


def prepare_instance(
    root: Path, reports_url: str, days: int = 3
) -> tuple[Path, Path, dict[str, int]]:
    """Temp DAGSTER_HOME + FRAUD_DATA_DIR with `days` batches landed and ingested, as the demo.

    Returns the Dagster home, the data dir and each batch's clean row count.
    """
    import dagster as dg

    from fraud_assets.definitions import build_definitions
    from fraud_assets.dev.inprocess import publish_after, tick_sensor
    from tests.support import write_days

    home, data_dir = root / "dagster_home", root / "data"
    dagster_instance.prepare_instance(home)  # as `make ui` does
    summary = write_days(data_dir / "landing", days=days, dirty=0.01)

    with pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if _foreign(n)]:
            mp.delenv(name)
        for name, value in _ui_env(home, data_dir, reports_url).items():
            mp.setenv(name, value)
        defs = build_definitions()  # resources from the environment, as the code location's
        with dg.DagsterInstance.from_config(str(home)) as instance:
            # The terminal registry first, as the demo does: cleaning checks terminals against it.
            registry = tick_sensor(defs, instance, "terminal_registry_sensor", log_level="ERROR")
            assert not registry.failed, f"terminal registry failed: {registry.failed}"
            outcome = tick_sensor(defs, instance, "landing_sensor", log_level="ERROR")
            assert outcome.succeeded == summary.batches, f"ingest failed: {outcome.failed}"
            assert not publish_after(defs, instance, outcome.runs, log_level="ERROR")
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
    reports_port = free_port()
    reports_url = f"http://127.0.0.1:{reports_port}"
    home, data_dir, clean_rows = prepare_instance(root, reports_url, days)
    env = {k: v for k, v in os.environ.items() if not _foreign(k)}
    env.update(_ui_env(home, data_dir, reports_url))
    reports_log = root / "fraud_reports.log"
    command = [str(BIN / "fraud"), "reports", "--port", str(reports_port)]
    reports = start_process(command, ROOT, env, reports_log)
    try:
        dev = DagsterDev.start(BIN / "dg", ROOT, env, root / "dagster_dev.log")
        ui = DagsterUI(dev.url, reports_url, home, data_dir, list(clean_rows), clean_rows, dev)
        try:
            _wait_for_reports(reports_url, reports, reports_log)
            dev.wait_until_ready()
            yield ui
        finally:
            dev.stop()
    finally:
        stop_process(reports)


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
    from playwright.sync_api import expect, sync_playwright

    # A page of the UI can take over 5 s (Playwright's default wait) to show its data while the
    # daemon runs a batch on a busy 2-core machine: a CI run failed on that alone.
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
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
