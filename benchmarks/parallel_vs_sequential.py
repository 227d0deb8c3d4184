"""The whole retrain flow (`recsys retrain`) with families trained one at a time versus in parallel.

    RECSYS_DATA_DIR=../shared/datasets nice .venv/bin/python -m benchmarks.parallel_vs_sequential \
        --dataset ml-latest-small --workers 1,2

Each setting runs in a fresh workspace (nothing cached) as its own process; the figures are its wall
time, its CPU time (user + system, the Prefect server and every child included), the CPU use
(CPU time / (wall time x cores)) and the ideal wall time of a perfectly packed run (CPU time / cores).
Torch threads are cores / workers (flows/runners.py). Writes benchmarks/results/parallel_vs_sequential.json.
Other work on the machine lengthens wall times: the note records the load average beside each run.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from recsys_models.registry import FAMILIES
from stages.layout import RunDir

RESULTS = Path(__file__).parent / "results"


def run_once(dataset: str, families: list[str], workers: int) -> dict:
    """One `recsys retrain` in a fresh workspace; wall and CPU seconds of the process tree."""
    with tempfile.TemporaryDirectory() as scratch:
        env = os.environ | {"RECSYS_WORKSPACE": scratch, "PREFECT_HOME": str(Path(scratch) / "prefect")}
        command = [
            str(Path(sys.executable).parent / "recsys"),
            "--plain",
            "retrain",
            "--dataset",
            dataset,
            "--families",
            ",".join(families),
            "--workers",
            str(workers),
        ]
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        output = process.communicate()[0]
        wall = time.perf_counter() - started
        runs = sorted((Path(scratch) / "runs").glob("*"))
        summary = RunDir(runs[-1]).summary() if runs else {}
        fits = (
            {
                path.parent.name: json.loads(path.read_text())["counts"].get("fit_seconds")
                for path in sorted((runs[-1] / "train").glob("*/manifest.json"))
            }
            if runs
            else {}
        )
    return {
        "workers": workers,
        "returncode": process.returncode,
        "wall_seconds": round(wall, 1),
        "load_average_before": round(load_before, 2),
        "fit_seconds": fits,
        "failed": summary.get("failed", {"run": output[-2000:]}),
    }


def cpu_seconds_of_children(before: "os.times_result", after: "os.times_result") -> float:
    return (after.children_user - before.children_user) + (after.children_system - before.children_system)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-latest-small")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts to compare")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    families = args.families.split(",")
    rows = []
    for workers in (int(value) for value in args.workers.split(",")):
        before = os.times()
        row = run_once(args.dataset, families, workers)
        cpu = cpu_seconds_of_children(before, os.times())
        row |= {
            "cpu_seconds": round(cpu, 1),
            "cpu_use": round(cpu / (row["wall_seconds"] * cores), 3),
            "ideal_wall_seconds": round(cpu / cores, 1),
            "wall_over_ideal": round(row["wall_seconds"] / (cpu / cores), 2),
        }
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "fit_seconds"}), flush=True)
    RESULTS.mkdir(exist_ok=True)
    payload = {"dataset": args.dataset, "cores": cores, "families": families, "runs": rows}
    (RESULTS / "parallel_vs_sequential.json").write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
