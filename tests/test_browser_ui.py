"""A small run through the `recsys` CLI, then its UIs in headless Chromium: the MLflow UI shows the
registered models with the champion alias, and the HTML run report renders with its plots.

Browser tests need Debian's /usr/bin/chromium and the `playwright` package (no browser download);
they skip with the reason otherwise. Set RECSYS_SCREENSHOTS_DIR to also copy the screenshots
there (the README's come from `RECSYS_SCREENSHOTS_DIR=docs/screenshots`).
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from cli.main import main
from recsys_models.testing import low_rank_ratings
from stages.layout import RunDir

pytestmark = pytest.mark.flow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FAMILIES = "popularity,bpr_mf"
SERVER_START_SECONDS = 120
browser_test = pytest.mark.browser


@pytest.fixture(scope="module")
def small_run(prefect_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """`recsys --plain retrain` on 80 users x 50 items; yields the run's summary (workspace in it)."""
    root = tmp_path_factory.mktemp("ui")
    ratings = root / "ratings.parquet"
    frame = low_rank_ratings(n_users=80, n_items=50, density=0.3)
    frame.with_columns((pl.col("timestamp") * 3600 + 1_500_000_000).alias("timestamp")).write_parquet(ratings)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RECSYS_WORKSPACE", str(root / "workspace"))
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        code = main(["--plain", "retrain", "--dataset", str(ratings), "--families", FAMILIES])
        assert code == 0
        (run_dir,) = (root / "workspace" / "runs").iterdir()
        yield RunDir(run_dir).summary() | {"workspace": str(root / "workspace")}


def test_the_run_writes_its_report_and_logs_it_to_mlflow(small_run: dict, capsys: pytest.CaptureFixture) -> None:
    from mlflow import MlflowClient

    report = Path(small_run["report"])
    assert report == Path(small_run["run_dir"]) / "report" / "report.html" and report.exists()
    client = MlflowClient(small_run["mlflow"]["tracking_uri"])
    logged = {entry.path for entry in client.list_artifacts(small_run["mlflow"]["run_id"], "report")}
    assert {"report/report.html", "report/metric_comparison.png", "report/training_curves.png"} <= logged
    os.environ["RECSYS_WORKSPACE"] = small_run["workspace"]
    try:
        assert main(["report"]) == 0
    finally:
        del os.environ["RECSYS_WORKSPACE"]
    assert capsys.readouterr().out.strip() == str(report)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def chromium():
    """Headless Debian Chromium driven by Playwright; skips when either is missing."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: `apt-get install -y chromium` (done by .ci/run)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def mlflow_ui(small_run: dict) -> Iterator[str]:
    """`recsys ui` (the MLflow server on 127.0.0.1) on a free port over the run's workspace; yields
    its URL. Stopping it (SIGTERM) must stop the server it started."""
    workspace = Path(small_run["workspace"])
    port = free_port()
    env = os.environ | {"RECSYS_WORKSPACE": str(workspace)}
    log = (workspace / "ui.log").open("w")
    ui = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "ui", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while not _healthy(url):
            if ui.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"recsys ui did not start: {(workspace / 'ui.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        ui.terminate()
        ui.wait(timeout=60)
        log.close()
    assert not _healthy(url), "the MLflow server outlived `recsys ui`"


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def keep(screenshot: Path) -> None:
    """Copy a screenshot to RECSYS_SCREENSHOTS_DIR when set (the README's pictures)."""
    target = os.environ.get("RECSYS_SCREENSHOTS_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(target) / screenshot.name)


def _tidy(page) -> None:
    """MLflow 3 greets a new browser with a modal and an assistant side panel: dismiss both so
    the screenshot shows the registry (a JavaScript click, since the modal covers the panel)."""
    page.keyboard.press("Escape")
    for selector in (
        "[role='dialog'] button[aria-label='Close']",
        "[data-component-id='mlflow.assistant.chat_panel.close']",
    ):
        for button in page.locator(selector).all():
            button.evaluate("button => button.click()")
    page.wait_for_timeout(500)


def body_lines(page) -> list[str]:
    return [line.replace("\xa0", " ").strip() for line in page.inner_text("body").splitlines()]


@browser_test
def test_mlflow_ui_lists_the_models_and_the_champion_alias(
    chromium, mlflow_ui: str, small_run: dict, tmp_path: Path
) -> None:
    page = chromium.new_page(viewport={"width": 1280, "height": 420})
    page.goto(f"{mlflow_ui}/#/models", timeout=60_000)
    for name in ("recsys-popularity", "recsys-bpr_mf"):
        page.get_by_text(name, exact=True).first.wait_for(timeout=60_000)
    _tidy(page)
    lines = body_lines(page)
    # each row: name, latest version, aliases; a family's version is champion only where the gate
    # promoted it (bpr_mf must beat this run's popularity beyond noise), challenger otherwise
    decisions = {"recsys": small_run["overall"]} | {
        f"recsys-{family}": entry["registration"] for family, entry in small_run["families"].items()
    }
    assert decisions["recsys"]["promoted"] and decisions["recsys-popularity"]["promoted"]
    for name, decision in decisions.items():
        assert name in lines, name
        row = lines[lines.index(name) : lines.index(name) + 4]
        assert ("@ champion" if decision["promoted"] else "@ challenger") in row, row
    page.screenshot(path=tmp_path / "mlflow_models.png")
    keep(tmp_path / "mlflow_models.png")

    decision = decisions["recsys-bpr_mf"]
    page.set_viewport_size({"width": 1280, "height": 760})
    page.goto(f"{mlflow_ui}/#/models/recsys-bpr_mf", timeout=60_000)
    page.get_by_text("promotion_reason").first.wait_for(timeout=60_000)
    _tidy(page)
    lines = body_lines(page)
    assert f"Version {decision['version']}" in lines
    assert ("@ champion" if decision["promoted"] else "@ challenger") in lines
    assert any(decision["reason"] in line for line in lines)  # the gate's decision, on the version
    page.screenshot(path=tmp_path / "mlflow_model_champion.png")
    keep(tmp_path / "mlflow_model_champion.png")
    page.close()


@browser_test
def test_run_report_renders_with_its_plots(chromium, small_run: dict, tmp_path: Path) -> None:
    page = chromium.new_page(viewport={"width": 1200, "height": 900})
    page.goto(Path(small_run["report"]).as_uri())
    assert page.inner_text("h1") == f"Run {small_run['run_id']}"
    widths = page.eval_on_selector_all("img", "images => images.map(image => image.naturalWidth)")
    assert len(widths) >= 3 and all(width > 100 for width in widths)  # every embedded PNG decoded
    headings = page.eval_on_selector_all("h2", "nodes => nodes.map(node => node.textContent)")
    for heading in ("Data", "Data contracts", "Split", "Families", "Promotion"):
        assert heading in headings
    promotion = page.inner_text("body")
    assert "recsys-bpr_mf" in promotion and "champion" in promotion
    page.screenshot(path=tmp_path / "run_report.png", full_page=True)
    keep(tmp_path / "run_report.png")
    page.close()
