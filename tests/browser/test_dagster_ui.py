"""The Dagster UI shows our batch pipeline: lineage, partitions, checks, drift reports, a run
and a backfill launched from it.

Real Chromium against a real `dagster dev` (webserver + daemon) on a temp instance where three
simulated batches were ingested (see conftest.py). Every test saves a full-page screenshot in
`screenshots/` at the repository root.
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import Locator, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.browser.conftest import SCREENSHOTS, DagsterUI

pytestmark = pytest.mark.browser

BATCH_ASSETS = (
    "raw_transactions",
    "clean_transactions",
    "quarantined_transactions",
    "transaction_features",
    "drift_report",
)
UNPARTITIONED_ASSETS = ("challenger_model", "champion_review")
ALL_ASSETS = BATCH_ASSETS + UNPARTITIONED_ASSETS
# Queued, then the daemon starts a run worker that loads the code location; the drift report's
# first run in a process imports Evidently (~25 s).
RUN_TIMEOUT_MS = 300_000


def _icon_button(page: Page, icon: str):  # noqa: ANN202
    """Dagster's icon-only buttons: the icon carries an aria-label with its name."""
    return page.locator("button").filter(has=page.locator(f'[aria-label="{icon}"]'))


def test_global_asset_lineage_shows_the_batch_assets_and_the_models(
    page: Page, dagster_ui: DagsterUI, screenshot
):
    # Wide and without the side bars, so the graph fits at a zoom where nodes show full names.
    page.set_viewport_size({"width": 2200, "height": 1000})
    page.goto("/asset-groups")
    expect(page.get_by_text("Global asset lineage").first).to_be_visible()
    expect(page.get_by_label("Search and filter assets")).to_be_visible()
    page.get_by_text("Hide navigation").click()
    _icon_button(page, "panel_show_right").first.click()  # the asset tree beside the graph

    # Several groups are drawn collapsed: expand them from the graph's settings menu.
    _icon_button(page, "settings").last.click()
    page.get_by_role("menuitem", name=re.compile("Expand all groups")).click()
    page.keyboard.press("Escape")
    expect(page.get_by_text("ingestion", exact=True).first).to_be_visible()

    # Zoomed out, node names are middle-truncated ("quar…_transactions"); zoom in until full.
    for _ in range(8):
        if all(page.get_by_text(name, exact=True).count() for name in ALL_ASSETS):
            break
        _icon_button(page, "zoom_in").click()
        page.wait_for_timeout(250)  # the zoom animates
    for name in BATCH_ASSETS:
        node = page.locator("foreignObject").filter(has=page.get_by_text(name, exact=True))
        expect(node).to_have_count(1)
        expect(node).to_contain_text("3 partitions")
        expect(node).to_contain_text("100% filled")
    for name in UNPARTITIONED_ASSETS:
        node = page.locator("foreignObject").filter(has=page.get_by_text(name, exact=True))
        expect(node).to_have_count(1)
    for group in ("ingestion", "cleaning", "features", "monitoring", "models"):
        expect(page.get_by_text(group, exact=True).first).to_be_visible()
    page.wait_for_load_state("networkidle")
    screenshot("01_global_asset_lineage")


def test_partitions_of_clean_transactions_list_the_three_batches_as_materialized(
    page: Page, dagster_ui: DagsterUI, screenshot
):
    page.goto("/assets/clean_transactions?view=partitions")
    expect(page.get_by_text(f"Materialized ({len(dagster_ui.batches)})")).to_be_visible()
    expect(page.get_by_text("Missing (0)")).to_be_visible()
    expect(page.get_by_text("Failed (0)")).to_be_visible()
    for batch in dagster_ui.batches:
        # Each key is drawn twice (a hidden copy measures middle truncation): count visible ones.
        expect(page.get_by_text(batch, exact=True).filter(visible=True).first).to_be_visible()

    # Select one batch: its latest materialization, run and row count show on the right.
    batch = dagster_ui.batches[1]
    page.get_by_text(batch, exact=True).filter(visible=True).last.click()
    expect(page).to_have_url(re.compile(rf"partition={batch}"))
    expect(page.get_by_text("Latest materialization").first).to_be_visible()
    expect(page.get_by_text("ingest_batch", exact=False).first).to_be_visible()
    row_count = page.get_by_text("dagster/row_count", exact=True).first
    expect(row_count).to_be_visible()
    expect(page.get_by_text(f"{dagster_ui.clean_rows[batch]:,}", exact=True).first).to_be_visible()
    page.wait_for_load_state("networkidle")
    screenshot("02_clean_transactions_partitions")


def test_clean_transactions_checks_passed_and_row_count_is_on_the_asset_page(
    page: Page, dagster_ui: DagsterUI, screenshot
):
    page.goto("/assets/clean_transactions?view=checks")
    heading = page.get_by_text(re.compile(r"^Checks \(\d+\)$"))
    expect(heading).to_be_visible()
    n_checks = int(re.search(r"\d+", heading.inner_text()).group())
    assert n_checks >= 2  # quarantine_schema belongs to quarantined_transactions
    for check in ("rows_conserved", "clean_schema"):
        expect(page.get_by_text(check, exact=True).first).to_be_visible()
    expect(page.get_by_text("Succeeded", exact=True)).to_have_count(n_checks)

    page.get_by_text("rows_conserved", exact=True).first.click()
    expect(page).to_have_url(re.compile(r"checkDetail=rows_conserved"))
    expect(page.get_by_text("blocking", exact=True)).to_be_visible()
    description = "raw rows = clean + quarantined (cross-batch duplicate ids included) + dropped"
    expect(page.get_by_text(description)).to_be_visible()
    expect(page.get_by_text("Passed", exact=True).first).to_be_visible()
    for key in ("raw", "clean", "quarantined", "duplicates"):
        expect(page.get_by_text(key, exact=True).first).to_be_visible()
    page.wait_for_load_state("networkidle")
    screenshot("03_clean_transactions_checks")

    page.goto("/assets/clean_transactions")
    expect(page.get_by_text("Row count", exact=True)).to_be_visible()
    # The latest materialization names its partition; the row count shown is that batch's.
    status = page.get_by_text("Latest materialization", exact=True).locator("xpath=..")
    latest = status.get_by_text(re.compile(r"^\d{4}-\d{2}-\d{2}$"))
    expect(latest).to_be_visible()
    batch = latest.inner_text()
    assert batch in dagster_ui.clean_rows, batch
    expect(page.get_by_text(f"{dagster_ui.clean_rows[batch]:,}", exact=True).first).to_be_visible()
    expect(page.get_by_role("link", name="raw_transactions").first).to_be_visible()  # lineage
    page.wait_for_load_state("networkidle")
    screenshot("03_clean_transactions_row_count")


@pytest.mark.parametrize("asset", ["clean_transactions", "transaction_features"])
def test_a_batch_asset_page_says_which_engine_made_the_materialization(
    page: Page, dagster_ui: DagsterUI, asset: str
):
    page.goto(f"/assets/{asset}?view=partitions&partition={dagster_ui.batches[-1]}")
    expect(page.get_by_text("Latest materialization").first).to_be_visible()
    metadata = page.locator("table").filter(has=page.get_by_text("fraud/engine", exact=True))
    row = metadata.locator("tr").filter(has=page.get_by_text("fraud/engine", exact=True))
    expect(row.locator("td").nth(1)).to_have_text("polars")  # FRAUD_FEATURE_ENGINE of the UI


def test_drift_report_table_is_readable_on_the_asset_page_and_its_link_opens_the_report(
    page: Page, dagster_ui: DagsterUI, screenshot
):
    # The first batch has nothing to compare with; the later ones get an Evidently report.
    batch = dagster_ui.batches[-1]
    page.goto(f"/assets/drift_report?view=partitions&partition={batch}")
    expect(page.get_by_text("Latest materialization").first).to_be_visible()
    metadata = page.locator("table").filter(has=page.get_by_text("drift_table", exact=True))

    def value(key: str):  # noqa: ANN202 - the value cell of a metadata row
        row = metadata.locator("tr").filter(has=page.get_by_text(key, exact=True))
        return row.locator("td").nth(1)

    expect(value("verdict")).to_have_text(re.compile(r"^(not )?drifted$"))
    expect(value("drift_share")).to_have_text(re.compile(r"^[01](\.\d+)?$"))
    expect(value("drifted_columns")).to_have_text(re.compile(r"^(none|\w+(, \w+)*)$"))

    # The drift table (table metadata), one row per column, is shown in place as an HTML table.
    table = value("drift_table").locator("table")
    expect(table).to_have_count(1)
    expect(table.locator("th")).to_have_text(["column", "test", "score", "threshold", "drifted"])
    row = table.locator("tr").filter(has=page.locator("td", has_text=re.compile(r"^tx_amount$")))
    expect(row).to_have_count(1)
    expect(row.locator("td")).to_have_count(5)
    expect(row.locator("td").last).to_have_text(re.compile(r"^(yes|no)$"))
    expect(value("drift_summary")).to_have_text(re.compile(r"^Drifted columns: \d+ of \d+"))
    page.wait_for_load_state("networkidle")
    screenshot("05_drift_report_metadata")

    # The `report` link points at `fraud reports` (FRAUD_REPORTS_URL) and opens a new tab.
    url = f"{dagster_ui.reports_url}/reports/drift/{batch}.html"
    link = value("report").locator(f'a[href="{url}"]').first
    expect(link).to_have_text(url)
    report = open_in_new_tab(page, link)
    expect(report).to_have_url(url)
    # Evidently's self-contained HTML: a React app drawn from the data embedded in the page.
    expect(report.get_by_text("Dataset Drift", exact=True)).to_be_visible(timeout=60_000)
    expect(report.get_by_text("Data Drift Summary", exact=True)).to_be_visible()
    expect(report.get_by_text("tx_amount", exact=True).first).to_be_visible()
    report.wait_for_load_state("networkidle")
    SCREENSHOTS.mkdir(exist_ok=True)
    report.screenshot(path=str(SCREENSHOTS / "06_drift_report_html.png"), full_page=True)


def open_launch_dialog_for_the_batch_assets(page: Page):  # noqa: ANN201
    """Tick the batch assets (the `ingest_batch` job's) in the catalog, open their launch dialog."""
    page.goto("/assets")  # the catalog: tick the batch assets (the `ingest_batch` job's)
    for name in BATCH_ASSETS:
        expect(page.locator(f'a[href="/assets/{name}"]')).to_be_visible()
        box = page.get_by_test_id(f"checkbox-{name}")  # the input is hidden behind its label
        page.locator(f'label[for="{box.get_attribute("id")}"]').click()
        expect(box).to_be_checked()
    page.get_by_role(
        "button", name=re.compile(rf"Materialize selected \({len(BATCH_ASSETS)}\)")
    ).click()
    # drift_report depends on champion_review (the champion it scores with), which no run has
    # materialized here: the UI asks first, naming that asset and no other. (The report falls
    # back to the days before the batch without a champion, so the run succeeds.)
    warning = page.get_by_role("dialog").filter(has_text="Are you sure?")
    expect(warning).to_be_visible()
    expect(warning.locator("li")).to_have_text(["champion_review"])
    warning.get_by_role("button", name="Confirm").click()

    dialog = page.get_by_role("dialog")
    title = dialog.get_by_text(f"Launch runs to materialize {len(BATCH_ASSETS)} assets")
    expect(title).to_be_visible()
    return dialog, title


def open_in_new_tab(page: Page, link: Locator) -> Page:
    """Click a link that opens a new tab, and return the tab. Clicked again if no tab came: on a
    busy machine a click once landed while the metadata table re-rendered, and nothing opened."""
    for _ in range(2):
        try:
            with page.context.expect_page(timeout=15_000) as new_tab:
                link.click()
            return new_tab.value
        except PlaywrightTimeoutError:
            continue
    with page.context.expect_page() as new_tab:
        link.click()
    return new_tab.value


def pick_partition(page: Page, key: str) -> None:
    """Tick a partition in the launch dialog's open drop-down. The item's own element, not its
    text: the text truncates itself to fit and re-renders while the page is busy, and a click on
    it once waited 30 s for an element that kept being replaced (a CI failure). The drop-down
    may close after the pick: the caller checks the selection in the dialog."""
    page.locator("label").filter(has=page.locator(f'[data-tooltip="{key}"]')).click()


def test_materializing_one_batch_of_the_ingest_assets_from_the_ui_runs_to_success(
    page: Page, dagster_ui: DagsterUI, screenshot
):
    batch = dagster_ui.batches[-1]  # its look-back history (the days before) is in the lake
    dialog, title = open_launch_dialog_for_the_batch_assets(page)
    dialog.get_by_text("Select a partition or create one").click()
    pick_partition(page, batch)
    title.click()  # closes the drop-down
    expect(dialog.get_by_text("1 partition", exact=True)).to_be_visible()
    # No run config: the code location's default executor runs the steps in process.
    screenshot("04_materialize_one_batch_dialog")

    # One partition is launched as one run: the dialog offers a backfill for other counts only.
    dialog.get_by_role("button", name="Launch 1 run", exact=True).click()
    expect(page.get_by_text(re.compile(r"^Launched run"))).to_be_visible()
    page.get_by_role("link", name="View", exact=True).or_(
        page.get_by_role("button", name="View", exact=True)
    ).first.click()
    expect(page).to_have_url(re.compile(r"/runs/"))
    # Queued, dequeued by the daemon, executed by a run worker that loads the code location.
    expect(page.get_by_text("Success", exact=True).first).to_be_visible(timeout=RUN_TIMEOUT_MS)
    expect(page.get_by_text(f"partition: {batch}").first).to_be_visible()
    expect(page.get_by_text(f"{len(BATCH_ASSETS)} assets", exact=True)).to_be_visible()
    expect(page.get_by_text("Errored (0)")).to_be_visible()

    # The page shows its steps' "Success" a moment before the run worker records the run's end
    # (a CI run read STARTED here): wait for the run itself to end.
    deadline = time.monotonic() + 60
    while True:
        run = dagster_ui.graphql(
            """{ runsOrError(limit: 1) { ... on Runs { results { runId status startTime
                  endTime tags { key value } assetSelection { path } } } } }"""
        )["runsOrError"]["results"][0]
        if run["status"] not in ("QUEUED", "NOT_STARTED", "STARTING", "STARTED"):
            break
        assert time.monotonic() < deadline, f"the run did not end within 60 s: {run['status']}"
        time.sleep(0.5)
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert run["status"] == "SUCCESS"
    assert tags["dagster/partition"] == batch and tags.get("dagster/from_ui") == "true"
    assert {"/".join(k["path"]) for k in run["assetSelection"]} == set(BATCH_ASSETS)
    # Without any run config, the code location's default executor ran the steps in the run
    # worker's own process (one process per step would re-import the code location per step).
    events = dagster_ui.graphql(
        """query ($runId: ID!) { logsForRun(runId: $runId) { ... on EventConnection {
              events { __typename ... on MessageEvent { message } } } } }""",
        {"runId": run["runId"]},
    )["logsForRun"]["events"]
    engine = [e["message"] for e in events if e["__typename"] == "EngineEvent"]
    assert any(m.startswith("Executing steps in process") for m in engine), engine
    assert not any("multiprocess" in m for m in engine), engine
    print(f"run {run['runId']}: {run['endTime'] - run['startTime']:.1f} s from start to end")
    page.wait_for_load_state("networkidle")
    screenshot("04_one_batch_run_succeeded")


def test_backfill_of_every_batch_launched_from_the_ui_completes_as_ranged_runs(
    page: Page, dagster_ui: DagsterUI, screenshot
):
    # Dagster's launch dialog turns a selection of exactly one partition into one run ("Launch 1
    # run", the test above); more are launched as a backfill ("Launch backfill"). The batch
    # assets' backfill policy cuts it into ranged runs of FRAUD_BATCHES_PER_RUN batches (2 here).
    batches = dagster_ui.batches
    dialog, title = open_launch_dialog_for_the_batch_assets(page)
    launch_backfill = dialog.get_by_role("button", name="Launch backfill", exact=True)
    expect(launch_backfill).to_be_disabled()  # no partition chosen yet
    dialog.get_by_text("Select a partition or create one").click()
    pick_partition(page, batches[0])
    expect(dialog.get_by_role("button", name="Launch 1 run", exact=True)).to_be_enabled()
    expect(launch_backfill).to_have_count(0)
    title.click()  # closes the drop-down
    # Then every batch, as a user backfilling them all does: the drop-down may close itself
    # when the dialog re-renders (a CI run's second pick found it closed).
    dialog.get_by_role("button", name="All", exact=True).click()
    expect(dialog.get_by_text(f"{len(batches)} partitions", exact=True)).to_be_visible()
    expect(dialog.get_by_role("button", name="Launch 1 run", exact=True)).to_have_count(0)
    expect(launch_backfill).to_be_enabled()
    page.wait_for_load_state("networkidle")
    screenshot("04_backfill_dialog")

    launch_backfill.click()
    toast = page.get_by_text(re.compile(r"^Created backfill \w+$"))
    expect(toast).to_be_visible()
    backfill_id = toast.inner_text().split()[-1]
    page.get_by_role("link", name="View", exact=True).or_(
        page.get_by_role("button", name="View", exact=True)
    ).first.click()
    expect(page).to_have_url(re.compile(rf"/runs/b/{backfill_id}"))

    # The backfill page: its status turns from in progress to succeeded once the daemon has
    # launched the ranged runs and they ran, one after the other (pool fraud_batches).
    def detail(label: str):  # noqa: ANN202 - the value beside a label of the overview
        return page.get_by_text(label, exact=True).locator("xpath=..")

    expect(detail("Status")).to_contain_text("Succeeded", timeout=RUN_TIMEOUT_MS)
    n = str(len(batches))
    for name in BATCH_ASSETS:
        row = page.locator('[class*="VirtualizedTable_row"]').filter(
            has=page.locator(f'a[href="/assets/{name}"]')
        )
        expect(row).to_contain_text("100% completed")
        # Partitions targeted, in progress, succeeded, failed.
        cells = row.locator('[class*="VirtualizedTable_cellBox"]')
        expect(cells).to_have_text([re.compile(name), n, "0", n, "0"])

    backfill = dagster_ui.graphql(
        """query ($id: String!) { partitionBackfillOrError(backfillId: $id) {
              __typename ... on PartitionBackfill { status isAssetBackfill numPartitions
              partitionNames assetSelection { path } tags { key value } timestamp endTimestamp
              runs(limit: 10) { status startTime endTime tags { key value } } } } }""",
        {"id": backfill_id},
    )["partitionBackfillOrError"]
    assert backfill["__typename"] == "PartitionBackfill", backfill
    assert backfill["status"] == "COMPLETED_SUCCESS" and backfill["isAssetBackfill"]
    assert backfill["numPartitions"] == len(batches)
    assert sorted(backfill["partitionNames"]) == sorted(batches)
    assert {"/".join(k["path"]) for k in backfill["assetSelection"]} == set(BATCH_ASSETS)
    assert {"key": "dagster/from_ui", "value": "true"} in backfill["tags"]
    runs = sorted(
        (
            {t["key"]: t["value"] for t in r["tags"]} | {"status": r["status"]} | r
            for r in backfill["runs"]
        ),
        key=lambda r: r["startTime"],
    )
    assert all(r["status"] == "SUCCESS" and r["dagster/backfill"] == backfill_id for r in runs)
    # Ranged runs: 3 batches at 2 per run are 2 runs, and together they cover every batch.
    spans = [
        (r["dagster/asset_partition_range_start"], r["dagster/asset_partition_range_end"])
        for r in runs
    ]
    assert spans == [(batches[0], batches[1]), (batches[2], batches[2])], runs
    assert runs[0]["endTime"] <= runs[1]["startTime"]  # one batch run at a time
    took = backfill["endTimestamp"] - backfill["timestamp"]
    print(f"backfill {backfill_id}: {len(runs)} runs, {took:.1f} s from launch to completion")
    page.wait_for_load_state("networkidle")
    screenshot("04_backfill_completed")


def test_online_state_consistency_check_is_shown_on_the_asset_page(
    page: Page, dagster_ui: DagsterUI, screenshot
):
    """Issue 15: online/offline consistency (a Chronon-style metric) visible where people look:
    the check's latest result, the batch it replayed, its match rate and row counts."""
    page.goto("/assets/online_feature_state?view=checks")
    expect(page.get_by_text("online_offline_consistency", exact=True).first).to_be_visible()
    expect(page.get_by_text("Succeeded", exact=True).first).to_be_visible()
    expect(page.get_by_text("Passed", exact=True).first).to_be_visible()
    metadata = page.locator("table").filter(has=page.get_by_text("match_rate", exact=True))

    def value(key: str):  # noqa: ANN202 - the value cell of a metadata row
        row = metadata.locator("tr").filter(has=page.get_by_text(key, exact=True))
        return row.locator("td").nth(1)

    expect(value("batch")).to_have_text(dagster_ui.batches[-1])
    expect(value("match_rate")).to_have_text("1")
    compared = int(value("rows_compared").inner_text().replace(",", ""))
    assert compared > 0
    expect(value("rows_matching")).to_have_text(value("rows_compared").inner_text())
    expect(value("worst_columns").get_by_text("[Show Markdown]")).to_be_visible()
    page.wait_for_load_state("networkidle")
    screenshot("07_online_state_consistency_check")
