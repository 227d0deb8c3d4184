"""Two first runs at once on a fresh workspace: both open the MLflow store and its experiment
(MLflow's SQLite schema migration and the experiment's creation happen once, under a lock)."""

import os
import subprocess
import sys
from pathlib import Path

from tests.pipeline_helpers import REPO_ROOT

OPEN_STORE = """
import sys
from pathlib import Path
from tasks.tracking import ensure_experiment, open_client
from tasks.workspace import Workspace
workspace = Workspace(Path(sys.argv[1]))
print(ensure_experiment(open_client(workspace), workspace.mlflow_artifacts))
"""


def test_two_first_runs_open_one_store_and_one_experiment(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_STORE, str(tmp_path)],
            cwd=REPO_ROOT,
            text=True,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(3)
    ]
    outcomes = [worker.communicate(timeout=300) for worker in workers]
    assert all(worker.returncode == 0 for worker in workers), [err[-300:] for _, err in outcomes]
    assert len({out.strip() for out, _ in outcomes}) == 1  # the same experiment for every run
