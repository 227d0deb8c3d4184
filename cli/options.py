"""The command-line side of a run configuration (`cli/run_config.py`): `--config FILE`, which key each
flag of retrain, backtest, score and tune sets, help that shows the models' defaults, and
`recsys config show`.

A flag's argparse default is None ("not given"), so that a flag left out keeps the file's value; the
default itself is stated once, in the model, and `ModelDefaultsFormatter` prints it in `--help`.
"""

import argparse
from pathlib import Path
from typing import Any

from cli.run_config import CONFIG_TYPES, RunConfig, default_of, resolve
from recsys_models.datasets.sources import describe_source
from tasks.workspace import Workspace

# CLI option (argparse dest) -> the key of the run file it sets
FLAGS: dict[str, tuple[str, ...]] = {
    "dataset": ("dataset",),
    "families": ("families",),
    "protocol": ("protocol",),
    "seed": ("seed",),
    "windows": ("n_windows",),
    "window_days": ("window_days",),
    "model": ("model_name",),
    "alias": ("alias",),
    "k": ("k",),
    "family": ("family",),
    "trials": ("trials",),
    "timeout": ("timeout",),
    "out": ("out",),
    "runner": ("execution", "runner"),
    "workers": ("execution", "workers"),
    "dask_address": ("execution", "dask_address"),
    "no_cache": ("execution", "refresh_cache"),
    "warm_epochs": ("warm_epochs",),
    "register_only": ("register_only",),
}
FLOW_COMMANDS = tuple(CONFIG_TYPES)


class ModelDefaultsFormatter(argparse.RawDescriptionHelpFormatter):
    """Help whose flags end with the default their model states, e.g. `--seed SEED  ... (default 42)`;
    the command is the last word of the parser's prog."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        command = self._prog.split()[-1]
        if action.dest not in FLAGS or command not in FLOW_COMMANDS:
            return action.help
        default = default_of(command, FLAGS[action.dest])
        return action.help if default in (None, False) else f"{action.help} (default {default})"


def family_list(value: str) -> list[str]:
    """argparse `type` of `--families a,b`: the named families; given but empty is a usage error."""
    families = [name.strip() for name in value.split(",") if name.strip()]
    if not families:
        raise argparse.ArgumentTypeError("empty: name at least one family, or leave the option out to train all")
    return families


def family_configs_argument(value: str) -> dict[str, dict[str, Any]]:
    """argparse `type` of a family-configs file: its checked content, or a usage error naming what is wrong."""
    from flows.family_configs import read_family_configs

    try:
        return read_family_configs(Path(value))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """`--config FILE`: the run file whose values the flags given override."""
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help="run configuration (YAML; README: Configure a run); flags given override its values",
    )


def add_family_configs_argument(
    parser: argparse.ArgumentParser,
    flag: str = "--family-configs",
    description: str = "YAML/JSON file of family -> config, e.g. what `recsys tune` wrote; "
    "merged key by key over the run file's family_configs",
) -> None:
    """A family-configs file (what `recsys tune` wrote), merged into the run's family configs
    (tune: its entry for the tuned family, into `base_config`)."""
    parser.add_argument(flag, dest="family_configs", type=family_configs_argument, metavar="FILE", help=description)


def flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """The flags given, as a partial run file (`{"seed": 7, "execution": {"workers": 1}}`)."""
    values: dict[str, Any] = {}
    for dest, key in FLAGS.items():
        value = getattr(args, dest, None)
        if value is not None:
            section = values
            for name in key[:-1]:
                section = section.setdefault(name, {})
            section[key[-1]] = value
    return values


def run_config_of(args: argparse.Namespace) -> RunConfig:
    """The effective, validated configuration of a flow command's arguments, its dataset checked too
    (a bad spec or a missing column is one line naming it)."""
    run = resolve(args.command, args.config, getattr(args, "family_configs", None), flag_values(args))
    dataset = getattr(run.config, "dataset", None)
    if dataset is not None:
        describe_source(dataset)
    return run


def add_parser(commands: argparse._SubParsersAction) -> None:
    config = commands.add_parser(
        "config",
        help="print the effective run configuration (every default filled in)",
        epilog="examples: recsys config show | recsys config show --config examples/nightly.yaml --command retrain",
    )
    actions = config.add_subparsers(dest="action", required=True)
    show = actions.add_parser(
        "show", help="the configuration a command would run with, as YAML (a valid --config file)"
    )
    show.add_argument("--config", type=Path, default=None, metavar="FILE", help="a run configuration to fill in")
    show.add_argument(
        "--command",
        dest="for_command",
        default="retrain",
        choices=FLOW_COMMANDS,
        help="whose configuration (default retrain)",
    )


def run(args: argparse.Namespace, workspace: Workspace) -> int:
    """`recsys config show`: the effective configuration as YAML."""
    print(resolve(args.for_command, args.config).to_yaml(), end="")
    return 0
