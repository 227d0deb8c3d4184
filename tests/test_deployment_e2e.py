"""The README's "Nightly schedule" instructions, end to end, once: a Prefect server on 127.0.0.1 (a free
port), the process work pool, `prefect --no-prompt deploy --all` of prefect.yaml, then a worker that
runs one deployment run of nightly-retrain on synthetic data; everything is stopped afterwards."""

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
from pathlib import Path

import pytest

from stages.layout import RunDir
from tests.pipeline_helpers import REPO_ROOT

pytestmark = pytest.mark.flow

PREFECT = str(Path(sys.executable).parent / "prefect")
POOL = "recsys-process"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_healthy(api_url: str, server: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"prefect server exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{api_url}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise AssertionError("prefect server did not become healthy")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict[str, str]]:
    """`prefect server start --host 127.0.0.1` on a free port with its own PREFECT_HOME; yields the env."""
    api_url = f"http://127.0.0.1:{free_port()}/api"
    env = os.environ | {
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_API_URL": api_url,
        "RECSYS_WORKSPACE": str(tmp_path / "ws"),
        "RECSYS_PROJECT_DIR": str(REPO_ROOT),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "true",
    }
    (tmp_path / "prefect").mkdir()
    port = api_url.rsplit(":", 1)[1].split("/")[0]
    server = subprocess.Popen(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", port],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_healthy(api_url, server)
        yield env
    finally:
        stop(server)


def prefect(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([PREFECT, *args], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


RETRYABLE_STATUS = {408, 429, 502, 503}  # the codes Prefect's own client retries on


def api(env: dict[str, str], method: str, path: str, body: dict | None = None, attempts: int = 6) -> dict:
    """One REST call, retried like Prefect's client does: the server answers 503 when its SQLite database is
    briefly locked (for example while the scheduler inserts a new deployment's runs), and the write rolled back."""
    request = urllib.request.Request(
        env["PREFECT_API_URL"] + path,
        method=method,
        data=json.dumps(body or {}).encode(),
        headers={"Content-Type": "application/json"},
    )
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            if error.code not in RETRYABLE_STATUS or attempt == attempts - 1:
                raise
        time.sleep(2**attempt)
    raise ValueError("attempts must be at least 1")


def test_serve_deploy_and_run_the_nightly_deployment(served: dict[str, str], tmp_path: Path) -> None:
    env = served
    prefect(env, "work-pool", "create", POOL, "--type", "process")
    prefect(env, "--no-prompt", "deploy", "--all")

    nightly = api(env, "GET", "/deployments/name/nightly-retrain/nightly-retrain")
    assert nightly["global_concurrency_limit"]["limit"] == 1  # two nightly runs never overlap
    assert [(s["schedule"]["cron"], s["schedule"]["timezone"]) for s in nightly["schedules"]] == [("0 2 * * *", "UTC")]
    assert api(env, "GET", "/deployments/name/batch-score/nightly-batch-score")["work_pool_name"] == POOL

    parameters = {"config": {"dataset": "synthetic", "families": ["popularity", "bias"]}}
    flow_run = api(env, "POST", f"/deployments/{nightly['id']}/create_flow_run", {"parameters": parameters})
    worker = subprocess.Popen(
        [PREFECT, "worker", "start", "--pool", POOL, "--limit", "1"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 480
        state = {}
        while time.monotonic() < deadline:
            state = api(env, "GET", f"/flow_runs/{flow_run['id']}")["state"]
            if state["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                break
            time.sleep(2)
    finally:
        stop(worker)
    assert state.get("type") == "COMPLETED", state

    (run_dir,) = (tmp_path / "ws" / "runs").iterdir()
    summary = RunDir(run_dir).summary()
    assert summary["config"]["dataset"] == "synthetic"
    assert set(summary["families"]) == {"popularity", "bias"} and summary["failed"] == {}
    assert summary["validation"]["valid_rows"] > 0
