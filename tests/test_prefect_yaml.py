"""prefect.yaml checked offline: Prefect itself silently ignores misspelled keys."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.pipeline_helpers import REPO_ROOT

TOP_LEVEL_KEYS = {"name", "prefect-version", "build", "push", "pull", "deployments"}
DEPLOYMENT_KEYS = {
    "name",
    "description",
    "entrypoint",
    "tags",
    "parameters",
    "work_pool",
    "schedules",
    "concurrency_limit",
    "version",
    "enforce_parameter_schema",
    "job_variables",
}
WORK_POOL_KEYS = {"name", "work_queue_name", "job_variables"}
SCHEDULE_KEYS = {"cron", "timezone", "active", "interval", "anchor_date", "rrule", "day_or"}


@pytest.fixture(scope="module")
def project() -> dict:
    return yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())


def test_only_known_keys(project: dict) -> None:
    assert set(project) <= TOP_LEVEL_KEYS, set(project) - TOP_LEVEL_KEYS
    for deployment in project["deployments"]:
        assert set(deployment) <= DEPLOYMENT_KEYS, set(deployment) - DEPLOYMENT_KEYS
        assert set(deployment["work_pool"]) <= WORK_POOL_KEYS
        for schedule in deployment["schedules"]:
            assert set(schedule) <= SCHEDULE_KEYS, set(schedule) - SCHEDULE_KEYS


def test_nightly_schedule_is_a_valid_cron_in_a_real_timezone(project: dict) -> None:
    from prefect.client.schemas.schedules import CronSchedule

    nightly = next(d for d in project["deployments"] if d["name"] == "nightly-retrain")
    assert nightly["concurrency_limit"] == 1  # two nightly runs never overlap
    for schedule in nightly["schedules"]:
        CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])  # raises on a bad cron or zone
    with pytest.raises(ValueError):
        CronSchedule(cron="0 2 * *", timezone="UTC")


def test_parameters_validate_against_the_flow_signature(project: dict) -> None:
    from prefect.flows import Flow, load_flow_from_entrypoint

    for deployment in project["deployments"]:
        entry_file, _, _ = deployment["entrypoint"].partition(":")
        assert (REPO_ROOT / entry_file).exists()
        flow: Flow[..., Any] = load_flow_from_entrypoint(str(Path(REPO_ROOT) / deployment["entrypoint"]))
        flow.validate_parameters(deployment.get("parameters", {}))
        with pytest.raises(Exception, match="datasett"):
            flow.validate_parameters({"config": {"datasett": "x"}})
