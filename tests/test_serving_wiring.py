"""The serving split: the stream worker shares the API's wiring without importing the web app,
and the one model poller hot-swaps a new champion and survives a failing registry."""

from __future__ import annotations

import subprocess
import sys
import threading

from fraud_assets.serving.wiring import ModelPoller


def test_stream_command_never_imports_the_web_module() -> None:
    code = (
        "import sys\n"
        "import fraud_assets.serving.stream_cli, fraud_assets.serving.wiring\n"
        "bad = [m for m in ('fraud_assets.serving.app', 'fastapi') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


class _Source:
    """A model source whose registry answers from a script: swap, fail, nothing new."""

    registry = object()

    def __init__(self, answers: list[object]) -> None:
        self.answers = answers
        self.calls = 0
        self.done = threading.Event()

    def refresh(self) -> bool:
        self.calls += 1
        answer = self.answers.pop(0) if self.answers else False
        if not self.answers:
            self.done.set()
        if isinstance(answer, Exception):
            raise answer
        return bool(answer)


def test_poller_reports_swaps_and_survives_registry_errors() -> None:
    source = _Source([True, RuntimeError("registry down"), False, True])
    seen: list[bool] = []
    poller = ModelPoller(source, interval=0.001, on_poll=seen.append)  # type: ignore[arg-type]
    poller.start()
    assert source.done.wait(10)
    poller.stop()
    assert seen[:4] == [True, False, False, True]
    calls = source.calls
    assert not poller._thread  # stopped: no more polls
    assert source.calls == calls


def test_poller_without_registry_does_not_start() -> None:
    source = _Source([True])
    source.registry = None  # type: ignore[assignment]
    poller = ModelPoller(source, interval=0.001).start()  # type: ignore[arg-type]
    poller.stop()
    assert source.calls == 0
