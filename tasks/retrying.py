"""Retries with backoff for the I/O of registration: the tracking database and the artefact store.

Only errors that can pass are retried: MLflow's "temporarily unavailable" (SQLite's "database is
locked" surfaces as one), rate limits, lost connections and timeouts. A missing file, a bad
argument or a model that does not exist fails at once. Stage tasks retry through Prefect
(`tasks/stage_tasks.py`); registration runs in the flow itself, one call after another, so it
retries call by call here.
"""

import functools
import logging
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

logger = logging.getLogger(__name__)

Result = TypeVar("Result")

BACKOFF_SECONDS = (1.0, 3.0, 9.0)  # waits before the second, third and fourth attempt
TRANSIENT_MLFLOW_CODES = frozenset({"TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED", "SERVICE_UNDER_MAINTENANCE"})
PERMANENT_OS_ERRORS = (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError)
sleep = time.sleep  # tests replace it


def is_transient(error: BaseException) -> bool:
    """Whether trying `error`'s call again may succeed."""
    if isinstance(error, MlflowException):
        return error.error_code in TRANSIENT_MLFLOW_CODES
    if isinstance(error, PERMANENT_OS_ERRORS):
        return False
    return isinstance(error, (OSError, TimeoutError))


def with_retries(call: Callable[..., Result], *args: Any, **kwargs: Any) -> Result:
    """`call(*args, **kwargs)`, tried again after each wait of `BACKOFF_SECONDS` on a transient error."""
    for attempt, wait in enumerate((*BACKOFF_SECONDS, None), start=1):
        try:
            return call(*args, **kwargs)
        except Exception as error:
            if wait is None or not is_transient(error):
                raise
            name = getattr(call, "__qualname__", repr(call))
            logger.warning("%s failed (attempt %d): %s; retrying in %.0f s", name, attempt, error, wait)
            sleep(wait)
    raise AssertionError("unreachable: the last attempt returns or raises")


_inside_retried_call: ContextVar[bool] = ContextVar("inside_retried_call", default=False)


def _retried_once(call: Callable[..., Result], *args: Any, **kwargs: Any) -> Result:
    """`with_retries` for the outermost call only: a client method calling another one does not
    multiply the attempts."""
    if _inside_retried_call.get():
        return call(*args, **kwargs)
    token = _inside_retried_call.set(True)
    try:
        return with_retries(call, *args, **kwargs)
    finally:
        _inside_retried_call.reset(token)


class RetryingClient(MlflowClient):
    """An `MlflowClient` whose public methods go through `with_retries`."""

    def __getattribute__(self, name: str) -> Any:
        attribute = super().__getattribute__(name)
        if name.startswith("_") or not callable(attribute):
            return attribute
        return functools.wraps(attribute)(functools.partial(_retried_once, attribute))
