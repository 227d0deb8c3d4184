"""Shared fixtures. Telemetry is off before Prefect or MLflow can be imported (no internet here).

Test modules use these by fixture name and never import this module (or one another):
tests/test_import_cycles.py checks. Shared plain helpers live in recsys_models/testing.py
(family data) and tests/pipeline_helpers.py (pipeline things, REPO_ROOT).
"""

import os
from pathlib import Path

import polars as pl
import pytest

for _name, _value in {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "DASK_LOGGING__DISTRIBUTED": "warning",
}.items():
    os.environ[_name] = _value

import torch  # noqa: E402  (after the environment above)

# One torch thread: the suite runs beside other work on 2 cores, and oversubscribed torch
# threads make training many times slower (STACK_NOTES.md).
torch.set_num_threads(1)

from recsys_models.interactions import Interactions  # noqa: E402
from recsys_models.testing import contract_parts  # noqa: E402
from tests.pipeline_helpers import REPO_ROOT  # noqa: E402


def shared_datasets_dir() -> Path | None:
    """RECSYS_DATA_DIR, else ../shared/datasets beside the checkout; None when neither exists."""
    candidates = [os.environ.get("RECSYS_DATA_DIR"), REPO_ROOT.parent / "shared" / "datasets"]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate).resolve()
    return None


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    """The real MovieLens folders; tests that need them skip with the reason when absent."""
    folder = shared_datasets_dir()
    if folder is None:
        pytest.skip("real datasets absent: set RECSYS_DATA_DIR or place ../shared/datasets beside the checkout")
    return folder


@pytest.fixture
def tiny_ratings() -> pl.DataFrame:
    """14 hand-written ratings of 4 users on 5 items, with ties in time."""
    return pl.DataFrame(
        {
            "user_id": [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 1, 2, 3],
            "item_id": [10, 20, 30, 10, 20, 40, 10, 30, 50, 20, 40, 40, 50, 20],
            "rating": [5.0, 4.0, 1.0, 4.5, 4.0, 2.0, 5.0, 3.5, 1.0, 4.0, 5.0, 4.0, 5.0, 4.5],
            "timestamp": [1, 2, 3, 1, 2, 3, 1, 2, 3, 2, 3, 10, 10, 11],
        }
    )


@pytest.fixture(scope="module")
def parts() -> tuple[Interactions, Interactions]:
    """The toy (train, valid) every family fits on in the contract and progress tests (`contract_parts`);
    a module that needs other data defines its own `parts`."""
    return contract_parts()


@pytest.fixture(scope="session")
def prefect_server():
    """One temporary Prefect server for the whole session; no heartbeat wait per flow run."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    # a generous start-up timeout: the default 30 s is not enough on a loaded 2-core machine
    with (
        prefect_test_harness(server_startup_timeout=300),
        temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
    ):
        yield


@pytest.fixture(autouse=True)
def _no_inherited_tracking_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    """`mlflow.set_tracking_uri` also sets MLFLOW_TRACKING_URI in the environment, which the
    workspace honours as "a real server": without this, one test's store leaks into the next."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
