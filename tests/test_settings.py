"""One settings module: every FRAUD_* variable is declared in `fraud_assets.settings`, read
nowhere else, documented in docs/settings.md, and the command line reads it without Dagster."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from fraud_assets import settings as settings_module
from fraud_assets.settings import (
    ALL_SETTINGS,
    DEFAULT_ORIGIN,
    Environment,
    FeatureEngineName,
    PlatformSettings,
    ServiceSettings,
)

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = [
    p for top in ("fraud_assets", "resources", "sensors") for p in (ROOT / top).rglob("*.py")
]
SETTINGS_FILE = ROOT / "fraud_assets" / "settings.py"
# Read with os.environ on purpose (declared in settings all the same): see the module's comment.
DIRECT_READS_ALLOWED = {"fraud_assets/lake/crash.py": {"FRAUD_LAKE_CRASH_AT"}}


def declared() -> set[str]:
    return {f"FRAUD_{name.upper()}" for cls in ALL_SETTINGS for name in cls.model_fields}


def test_every_fraud_variable_the_code_names_is_declared_in_settings() -> None:
    named = {
        (str(path.relative_to(ROOT)), name)
        for path in PRODUCT
        for name in re.findall(r"\bFRAUD_[A-Z0-9_]*[A-Z0-9]\b", path.read_text())
    }
    assert named, "the scan found no FRAUD_ names at all"
    assert {(path, name) for path, name in named if name not in declared()} == set()


def _env_reads(path: Path) -> set[str]:
    """FRAUD_* names this file reads through os.environ.get / os.getenv / os.environ[...]."""
    tree = ast.parse(path.read_text())
    constants = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name) and isinstance(node.value.value, str)
    }

    def value(arg: ast.expr) -> str | None:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            return arg.value
        if isinstance(arg, ast.Name):
            return constants.get(arg.id)
        return None

    found = set()
    for node in ast.walk(tree):
        arg = None
        if isinstance(node, ast.Call) and node.args:
            text = ast.unparse(node.func)
            if text in ("os.environ.get", "os.getenv", "environ.get", "getenv"):
                arg = node.args[0]
        elif (
            isinstance(node, ast.Subscript)
            and ast.unparse(node.value) == "os.environ"
            and isinstance(node.ctx, ast.Load)
        ):
            arg = node.slice
        name = value(arg) if arg is not None else None
        if name and name.startswith("FRAUD_"):
            found.add(name)
    return found


def test_no_module_but_settings_reads_a_fraud_variable_itself() -> None:
    reads = {
        str(path.relative_to(ROOT)): names
        for path in PRODUCT
        if path != SETTINGS_FILE and (names := _env_reads(path))
    }
    assert reads == DIRECT_READS_ALLOWED


def test_the_read_finder_sees_a_direct_read(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('import os\nKEY = "FRAUD_X"\nos.environ.get(KEY)\nos.environ["FRAUD_Y"]\n')
    assert _env_reads(sample) == {"FRAUD_X", "FRAUD_Y"}


def test_docs_list_every_variable() -> None:
    text = (ROOT / "docs" / "settings.md").read_text()
    assert {name for name in declared() if f"`{name}`" not in text} == set()


def test_choices_are_enums_and_a_bad_choice_names_its_variable(monkeypatch) -> None:
    monkeypatch.setenv("FRAUD_FEATURE_ENGINE", "sparky")
    with pytest.raises(ValidationError, match="feature_engine"):
        PlatformSettings()
    monkeypatch.setenv("FRAUD_FEATURE_ENGINE", "spark")
    monkeypatch.setenv("FRAUD_ENV", "prod")
    got = PlatformSettings()
    assert got.feature_engine is FeatureEngineName.SPARK and got.env is Environment.PROD


def test_the_service_and_the_platform_share_their_defaults(tmp_path, monkeypatch) -> None:
    """The scoring service finds the MLflow store, lake and label log the code location uses."""
    for name in declared():
        monkeypatch.delenv(name, raising=False)
    for data_dir in (None, tmp_path / "elsewhere"):
        if data_dir is not None:
            monkeypatch.setenv("FRAUD_DATA_DIR", str(data_dir))
        platform, service = PlatformSettings(), ServiceSettings()
        assert service.mlflow_tracking_uri == platform.tracking_uri
        assert service.lake == platform.lake
        assert service.label_log_dir == platform.label_log
        assert service.redis_prefix == platform.redis_prefix
        assert service.origin_date == platform.origin_date == DEFAULT_ORIGIN
    assert platform.tracking_uri == f"sqlite:///{tmp_path / 'elsewhere' / 'mlflow' / 'mlflow.db'}"


def test_blank_values_mean_unset(monkeypatch) -> None:
    monkeypatch.setenv("FRAUD_LAKE_URL", "  ")
    monkeypatch.setenv("FRAUD_PSEUDONYM_KEY", "")
    assert PlatformSettings().lake_url is None
    assert settings_module.secret_settings().pseudonym_key is None


def test_the_settings_module_imports_nothing_of_ours_and_no_dagster() -> None:
    tree = ast.parse(SETTINGS_FILE.read_text())
    imported = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not {m for m in imported if m.startswith(("dagster", "fraud_assets", "resources"))}


def test_the_command_line_imports_no_resources_module() -> None:
    """Only the demo (which runs Dagster on purpose) may reach Dagster from `fraud`; every other
    command learns its paths from the settings."""
    reached = {}
    for path in sorted((ROOT / "fraud_assets" / "cli").glob("*.py")):
        if path.name == "demo.py":
            continue
        names = {
            (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in node.names
        }
        if bad := sorted(n for n in names if n.startswith(("dagster", "resources"))):
            reached[path.name] = bad
    assert reached == {}


@pytest.mark.slow  # a fresh interpreter importing the whole command line and MLflow
def test_path_only_commands_do_not_import_dagster(tmp_path) -> None:
    """`fraud lake commits` and `fraud model list` learn their paths from the settings, not from
    the resources module (which imports Dagster and dagster-aws)."""
    script = f"""
import sys
from typer.testing import CliRunner
from fraud_assets.cli import app
runner = CliRunner()
lake = runner.invoke(app, ["lake", "commits", "clean", "--lake", {str(tmp_path / "lake")!r}])
models = runner.invoke(app, ["model", "list", "--tracking-uri",
                             "sqlite:///{tmp_path / "mlflow.db"}"])
print(lake.exit_code, models.exit_code, sorted(m for m in sys.modules if m.startswith("dagster")))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert out.returncode == 0, out.stderr
    lake_code, model_code, dagster = out.stdout.strip().splitlines()[-1].split(" ", 2)
    assert dagster == "[]"
    assert model_code == "0", out.stdout


@pytest.mark.dagster  # builds the Dagster resource (no run)
def test_the_training_resource_and_the_training_code_agree_on_every_default() -> None:
    """`ModelTraining` (what the UI configures) declares the knobs of `TrainingConfig` and
    `ReviewConfig` again, as Dagster config: their defaults must not drift apart. The resource's
    one seed is passed to both (the review's own default seed is not used by the platform)."""
    import dataclasses

    from fraud_assets.modeling.review import ReviewConfig
    from fraud_assets.modeling.training import TrainingConfig
    from resources.models import ModelTraining

    resource = ModelTraining()
    compared = 0
    for config, skip in ((TrainingConfig(), set()), (ReviewConfig(), {"seed"})):
        for field in dataclasses.fields(config):
            if field.name in ModelTraining.model_fields and field.name not in skip:
                assert getattr(resource, field.name) == getattr(config, field.name), field.name
                compared += 1
    assert compared >= 14
