"""Retries with backoff for the I/O of registration: the tracking database and the artefact store.

Only errors that can pass are retried: MLflow's "temporarily unavailable" (SQLite's "database is
locked" surfaces as one, or as SQLite's own error), rate limits, lost connections, timeouts and
the few OS errors that say "try again" (`TRANSIENT_ERRNOS`). A missing file, a bad argument, a
corrupt artefact (a broken zip or npz, an OSError with no errno) or a model that does not exist
fails at once. Stage tasks retry through Prefect (`tasks/stage_tasks.py`; `retry_transient` is the
condition for a Prefect task); registration runs in the flow itself, one call after another, so it
retries call by call here.
"""

import errno
import functools
import logging
import sqlite3
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
TRANSIENT_ERRNOS = frozenset(
    {
        errno.EAGAIN,
        errno.EBUSY,
        errno.EINTR,
        errno.EIO,
        errno.ETIMEDOUT,
        errno.ESTALE,
        errno.ENETDOWN,
        errno.ENETUNREACH,
        errno.EHOSTUNREACH,
    }
)
sleep = time.sleep  # tests replace it


def is_transient(error: BaseException) -> bool:
    """Whether trying `error`'s call again may succeed."""
    if isinstance(error, MlflowException):
        return error.error_code in TRANSIENT_MLFLOW_CODES
    if isinstance(error, ConnectionError | TimeoutError):
        return True
    if isinstance(error, OSError):
        return error.errno in TRANSIENT_ERRNOS
    return _database_locked(error)


def _database_locked(error: BaseException) -> bool:
    """SQLite's "database is locked", raw or wrapped by SQLAlchemy (as its `orig`)."""
    cause = getattr(error, "orig", error)
    return isinstance(cause, sqlite3.OperationalError) and "database is locked" in str(cause)


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """A Prefect `retry_condition_fn`: try the task again only when it failed on a transient error."""
    try:
        state.result()
    except Exception as error:
        return is_transient(error)
    return False


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
