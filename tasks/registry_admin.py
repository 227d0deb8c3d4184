"""Registry chores from the terminal: list models and aliases, promote a version, roll back."""

from dataclasses import dataclass
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from recsys_models.exceptions import RecsysError

from tasks.promotion import CHAMPION, PREVIOUS, champion_version
from tasks.workspace import file_lock


@dataclass(frozen=True)
class ModelRow:
    name: str
    latest_version: str
    aliases: dict[str, str]
    champion_reason: str


def aliased_version(client: MlflowClient, name: str, alias: str) -> str:
    """The version of `name` holding `alias`; a `RecsysError` saying what to do when there is none."""
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        known = ", ".join(sorted(model.name for model in client.search_registered_models())) or "none yet"
        raise RecsysError(f"no registered model {name!r} (registered: {known}): run `recsys retrain` first")
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        raise RecsysError(f"no version of {name!r} holds the alias {alias!r}: see `recsys models list`") from None


def list_models(client: MlflowClient) -> list[ModelRow]:
    """Every registered model with its aliases and why its champion is champion."""
    rows = []
    for model in client.search_registered_models():
        aliases = {alias: str(version) for alias, version in model.aliases.items()}
        versions = client.search_model_versions(f"name = '{model.name}'")
        latest = max((int(v.version) for v in versions), default=0)
        reason = ""
        if CHAMPION in aliases:
            reason = client.get_model_version(model.name, aliases[CHAMPION]).tags.get("promotion_reason", "set by hand")
        rows.append(ModelRow(model.name, str(latest), aliases, reason))
    return sorted(rows, key=lambda row: row.name)


def set_champion(client: MlflowClient, name: str, version: str, lock_file: Path) -> str | None:
    """Make `version` champion by hand; the replaced champion becomes `previous_champion`."""
    client.get_model_version(name, version)  # raises a clear MLflow error for an unknown version
    with file_lock(lock_file):
        before = champion_version(client, name)
        if before is not None and before != version:
            client.set_registered_model_alias(name, PREVIOUS, before)
        client.set_registered_model_alias(name, CHAMPION, version)
    client.set_model_version_tag(name, version, "promotion_reason", "set by hand with `recsys models promote`")
    return before


def roll_back(client: MlflowClient, name: str, lock_file: Path) -> str:
    """Give `champion` back to `previous_champion` (and swap the two); return the new champion."""
    aliases = {alias: str(version) for alias, version in client.get_registered_model(name).aliases.items()}
    if PREVIOUS not in aliases:
        raise ValueError(f"{name} has no '{PREVIOUS}' alias to roll back to")
    set_champion(client, name, aliases[PREVIOUS], lock_file)
    return aliases[PREVIOUS]
