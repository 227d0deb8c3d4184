"""`recsys datasets`: which data sets are at hand, fetch MovieLens, validate a file against the contracts."""

import argparse
import json
from pathlib import Path

from tasks.workspace import Workspace, data_dir_from_env, new_run_id

NAMED = ("ml-latest-small", "ml-100k")


def add_parser(commands: argparse._SubParsersAction) -> None:
    datasets = commands.add_parser(
        "datasets",
        help="list data sets, fetch MovieLens, validate a ratings file against the data contracts",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  recsys datasets list\n  recsys datasets fetch ml-100k\n"
        "  recsys datasets validate shop.yaml          # a dataset spec (README: Bring your own data)\n"
        "  recsys datasets validate my_ratings.csv     # columns user_id,item_id,rating,timestamp",
    )
    actions = datasets.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="the named data sets and where each is found")
    fetch = actions.add_parser("fetch", help="download a MovieLens data set into the workspace (checksum checked)")
    fetch.add_argument("name", choices=NAMED)
    validate = actions.add_parser(
        "validate", help="run ingestion and the data contracts on a file or named data set; exit 2 when it fails"
    )
    validate.add_argument(
        "source",
        help="a dataset spec (.yaml), a ratings .csv/.tsv/.parquet file, or ml-latest-small, ml-100k, synthetic",
    )


def locate(name: str, workspace: Workspace) -> Path | None:
    """Where a named MovieLens data set is read from: RECSYS_DATA_DIR first, then the downloads."""
    data_dir = data_dir_from_env()
    for folder in ([data_dir / name] if data_dir else []) + [workspace.downloads / name]:
        if folder.is_dir():
            return folder
    return None


def run(args: argparse.Namespace, workspace: Workspace) -> int:
    if args.action == "list":
        for name in NAMED:
            folder = locate(name, workspace)
            print(f"{name:<17} {folder if folder else 'absent: `recsys datasets fetch ' + name + '` downloads it'}")
        print(f"{'synthetic':<17} generated on the fly (seeded)")
        print("any file          a ratings .csv/.tsv/.parquet with user_id, item_id, rating, timestamp (Unix s)")
        return 0
    if args.action == "fetch":
        from recsys_models.datasets import fetch_movielens

        folder = locate(args.name, workspace)
        if folder is None:
            folder = fetch_movielens(args.name, workspace.downloads)
        print(f"{args.name}: {folder}")
        return 0
    return _validate(args.source, workspace)


def _validate(source: str, workspace: Workspace) -> int:
    """Ingest and validate `source` into workspace/validations/<id>/ and print the outcome."""
    from stages.ingest import ingest
    from stages.validate import validate

    out = workspace.root / "validations" / new_run_id()
    ingest_dir = ingest(source, out / "ingest", data_dir_from_env(), workspace.downloads)
    validate_dir = validate(ingest_dir, out / "validate")  # raises ContractViolation: one line, exit 2
    report = json.loads((validate_dir / "validation_report.json").read_text())
    rejected = json.loads((ingest_dir / "manifest.json").read_text())["counts"]["rejected_rows"]
    print(f"{source}: passed the data contracts ({rejected} unparseable rows set aside at ingestion)")
    for table, result in report.items():
        if isinstance(result, dict) and "expectations" in result:
            broken = [e["name"] for e in result["expectations"] if not e["success"] and not e.get("skipped")]
            print(
                f"  {table:<8} {result['valid_rows']} valid, {result['quarantined_rows']} quarantined"
                + (f"  (broken: {', '.join(broken)})" if broken else "")
            )
    print(f"quarantined rows and the full report: {validate_dir}")
    return 0
