"""Registration retries transient I/O errors with backoff, and nothing else."""

from pathlib import Path
from typing import Protocol, cast

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, TEMPORARILY_UNAVAILABLE
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

from tasks import retrying
from tasks.retrying import BACKOFF_SECONDS, RetryingClient, with_retries


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr(retrying, "sleep", recorded.append)
    return recorded


class CountedCall(Protocol):
    """A no-argument call that counts how often it was made."""

    attempts: int

    def __call__(self) -> str: ...


def failing(errors: list[Exception], result: str = "done") -> CountedCall:
    """A call that raises `errors` one per attempt, then returns `result`; counts its attempts."""

    def call() -> str:
        counted.attempts += 1
        if errors:
            raise errors.pop(0)
        return result

    counted = cast(CountedCall, call)  # the function itself, which carries its `attempts`
    counted.attempts = 0
    return counted


def locked() -> MlflowException:
    return MlflowException("(sqlite3.OperationalError) database is locked", error_code=TEMPORARILY_UNAVAILABLE)


def test_transient_errors_are_retried_after_growing_waits(waits: list[float]) -> None:
    call = failing([locked(), ConnectionResetError("reset by peer")])
    assert with_retries(call) == "done"
    assert call.attempts == 3 and waits == list(BACKOFF_SECONDS[:2])


@pytest.mark.parametrize(
    "error",
    [
        MlflowException("no such model", error_code=RESOURCE_DOES_NOT_EXIST),
        FileNotFoundError("model/MLmodel"),
        ValueError("bad argument"),
    ],
    ids=["missing-model", "missing-file", "bad-argument"],
)
def test_other_errors_fail_at_once(waits: list[float], error: Exception) -> None:
    call = failing([error])
    with pytest.raises(type(error)):
        with_retries(call)
    assert call.attempts == 1 and waits == []


def test_an_error_that_does_not_pass_is_raised_after_the_last_wait(waits: list[float]) -> None:
    call = failing([locked() for _ in range(len(BACKOFF_SECONDS) + 1)])
    with pytest.raises(MlflowException, match="database is locked"):
        with_retries(call)
    assert call.attempts == len(BACKOFF_SECONDS) + 1 and waits == list(BACKOFF_SECONDS)


def test_the_client_retries_a_locked_sqlite_store_once_per_call(
    tmp_path: Path, waits: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = RetryingClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    real_create = SqlAlchemyStore.create_experiment
    errors = [locked()]

    def create_once_locked(self, *args, **kwargs):
        if errors:
            raise errors.pop(0)
        return real_create(self, *args, **kwargs)

    monkeypatch.setattr(SqlAlchemyStore, "create_experiment", create_once_locked)
    experiment_id = client.create_experiment("retried", artifact_location=(tmp_path / "artifacts").as_uri())
    assert client.get_experiment(experiment_id).name == "retried"
    assert waits == [BACKOFF_SECONDS[0]]
    with pytest.raises(MlflowException):  # a lookup of what does not exist is not retried
        client.get_registered_model("absent")
    assert waits == [BACKOFF_SECONDS[0]]
