"""Family configurations file: a YAML (or JSON) mapping of family -> config, as `recsys tune` writes
it and `recsys retrain --family-configs FILE` reads it into `RetrainConfig.family_configs`."""

from pathlib import Path
from typing import Any

import yaml

from flows.config import describe_unknown
from recsys_models.io import atomic_write_bytes
from recsys_models.registry import FAMILIES, make_config


def read_family_configs(path: Path) -> dict[str, dict[str, Any]]:
    """Each family's config from `path`, checked: known families, configs their family accepts."""
    try:
        content = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"cannot read family configs {path}: {error}") from None
    if not isinstance(content, dict) or not all(isinstance(config, dict) for config in content.values()):
        raise ValueError(f"{path}: expected a mapping of family -> config mapping")
    for family, config in content.items():
        if family not in FAMILIES:
            raise ValueError(f"{path}: {describe_unknown(family)}")
        make_config(family, config)  # a wrong key or value: pydantic's error names it
    return content


def write_family_config(path: Path, family: str, config: dict[str, Any]) -> Path:
    """Set `family`'s entry of the file at `path` to `config`, keeping the other families' entries."""
    content = read_family_configs(path) if path.exists() else {}
    content[family] = config
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, yaml.safe_dump(content, sort_keys=True).encode())
    return path
