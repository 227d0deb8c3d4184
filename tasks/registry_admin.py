"""Registry chores from the terminal: list models and aliases, promote a version, roll back.

Each `champion` change made here is recorded in the registered-model tag `champion_history`, so a
rollback steps back through the champions one at a time instead of swapping the last two."""

import json
from dataclasses import dataclass
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from recsys_models.exceptions import RecsysError
from tasks.promotion import CHAMPION, PREVIOUS, champion_version
from tasks.workspace import file_lock

HISTORY_TAG = "champion_history"  # {"versions": [oldest, ..., current], "seen_up_to": newest version then}
HISTORY_LENGTH = 100  # champions kept on record (a tag value holds at most 5000 characters)
PROMOTED = "promoted"  # the `promotion_decision` tag of a version the nightly gate made champion


@dataclass(frozen=True)
class ModelRow:
    name: str
    latest_version: str
    aliases: dict[str, str]
    champion_reason: str


def aliased_version(client: MlflowClient, name: str, alias: str) -> str:
    """The version of `name` holding `alias`; a `RecsysError` saying what to do when there is none."""
    require_model(client, name)
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        raise RecsysError(f"no version of {name!r} holds the alias {alias!r}: see `recsys models list`") from None


def require_model(client: MlflowClient, name: str) -> None:
    """A `RecsysError` naming the registered models when `name` is none of them."""
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        known = ", ".join(sorted(model.name for model in client.search_registered_models())) or "none yet"
        raise RecsysError(f"no registered model {name!r} (registered: {known}): run `recsys retrain` first")


def require_version(client: MlflowClient, name: str, version: str) -> None:
    """A `RecsysError` listing the versions of `name` when `version` is none of them."""
    require_model(client, name)
    versions = sorted(int(found.version) for found in client.search_model_versions(f"name = '{name}'"))
    if not version.isdigit() or int(version) not in versions:
        raise RecsysError(f"{name} has no version {version!r} (versions: {', '.join(map(str, versions)) or 'none'})")


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


def champion_history(client: MlflowClient, name: str) -> list[str]:
    """The versions that held `champion`, oldest first, ending with the current one: the record kept
    here, then the versions the nightly gate promoted since (in version order: each was new when it
    was promoted), then a champion set elsewhere (the MLflow UI)."""
    model = client.get_registered_model(name)
    record = json.loads(model.tags.get(HISTORY_TAG, "{}"))
    versions = client.search_model_versions(f"name = '{name}'")
    promoted = sorted(int(found.version) for found in versions if found.tags.get("promotion_decision") == PROMOTED)
    promoted = [version for version in promoted if version > record.get("seen_up_to", 0)]
    history = [*record.get("versions", []), *map(str, promoted)]
    aliases = {alias: str(version) for alias, version in model.aliases.items()}
    if CHAMPION in aliases and history[-1:] != [aliases[CHAMPION]]:
        history.append(aliases[CHAMPION])
    if len(history) == 1 and aliases.get(PREVIOUS, history[0]) != history[0]:  # a registry from before the record
        history.insert(0, aliases[PREVIOUS])
    return history


def _record_history(client: MlflowClient, name: str, history: list[str]) -> None:
    """Store `history` (repeats in a row merged) with the newest version it has taken into account."""
    merged = [version for index, version in enumerate(history) if index == 0 or version != history[index - 1]]
    newest = max((int(found.version) for found in client.search_model_versions(f"name = '{name}'")), default=0)
    record = {"versions": merged[-HISTORY_LENGTH:], "seen_up_to": newest}
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(record))


def set_champion(client: MlflowClient, name: str, version: str, lock_file: Path) -> str | None:
    """Make `version` champion by hand; the replaced champion becomes `previous_champion`."""
    require_version(client, name, version)
    with file_lock(lock_file):
        before = champion_version(client, name)
        history = champion_history(client, name)
        if before is not None and before != version:
            client.set_registered_model_alias(name, PREVIOUS, before)
        client.set_registered_model_alias(name, CHAMPION, version)
        _record_history(client, name, [*history, version])
    client.set_model_version_tag(name, version, "promotion_reason", "set by hand with `recsys models promote`")
    return before


def roll_back(client: MlflowClient, name: str, lock_file: Path) -> str:
    """Give `champion` back to the version that held it before the current one, one step further
    back through `champion_history` on each call; return the new champion."""
    require_model(client, name)
    with file_lock(lock_file):
        history = champion_history(client, name)
        if len(history) < 2:
            held = f"v{history[0]} is the first champion on record" if history else "it has no champion"
            raise ValueError(f"{name} has no '{PREVIOUS}' alias to roll back to: {held}")
        history.pop()
        client.set_registered_model_alias(name, CHAMPION, history[-1])
        if len(history) > 1:
            client.set_registered_model_alias(name, PREVIOUS, history[-2])
        elif PREVIOUS in client.get_registered_model(name).aliases:
            client.delete_registered_model_alias(name, PREVIOUS)
        _record_history(client, name, history)
    client.set_model_version_tag(name, history[-1], "promotion_reason", "rolled back to by `recsys models rollback`")
    return history[-1]
