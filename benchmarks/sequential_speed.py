"""Epoch time and training throughput (tokens/s) of the sequential families, plus scoring speed.

    .venv/bin/python -m benchmarks.sequential_speed
    .venv/bin/python -m benchmarks.sequential_speed --datasets ml-latest-small --families sasrec --epochs 2

A token is one predicted next item (every interaction but a user's first). Each (dataset,
family, loss) is fitted on every valid rating for `--epochs` epochs without a validation tail
(so no early stopping and no validation time in the epoch), on CUDA when available; the epoch
time is the median over those epochs, as the trainer records it. Scoring speed is users per
second for full-catalogue scores of every user. `markov` has no epochs: its fit time is
reported. Writes benchmarks/results/sequential_speed.json (runs of other datasets, families or
losses already in the file are kept) and prints one JSON line per run. The
synthetic set is fit_speed's: 20,000 users, 10,000 items, 1,000,000 ratings. Wall-clock times:
other work on the machine changes them.
"""

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.fit_speed import DATASETS, load_interactions
from recsys_models.options import TrainingOptions
from recsys_models.registry import family_class, make_config

RESULTS = Path(__file__).parent / "results"
LOSSES = ("cross_entropy", "sampled_softmax")


def run_one(data, family: str, loss: str | None, epochs: int, seed: int) -> dict:
    """Fit one family for `epochs` epochs and time its epochs and its scoring of every user."""
    values = {} if loss is None else {"loss": loss, "epochs": epochs}
    model = family_class(family)(make_config(family, values), TrainingOptions(seed=seed))
    started = time.perf_counter()
    model.fit(data)
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    model.score(np.arange(data.n_users))
    score_seconds = time.perf_counter() - started
    n_tokens = len(data) - int((np.bincount(data.user_idx, minlength=data.n_users) > 0).sum())
    result = {
        "family": family,
        "loss": loss,
        "fit_seconds": round(fit_seconds, 2),
        "n_tokens": n_tokens,
        "score_users_per_second": round(data.n_users / score_seconds),
    }
    if model.history:
        epoch_seconds = float(np.median([record["epoch_seconds"] for record in model.history]))
        result |= {
            "epochs": len(model.history),
            "epoch_seconds": round(epoch_seconds, 2),
            "tokens_per_second": round(n_tokens / epoch_seconds),
        }
    return result


def _key(run: dict) -> tuple:
    return run["dataset"], run["family"], run["loss"]


def _merged(path: Path, runs: list[dict]) -> list[dict]:
    """This call's runs plus those of an earlier results file that this call did not redo."""
    if not path.exists():
        return runs
    done = {_key(run) for run in runs}
    return [run for run in json.loads(path.read_text())["runs"] if _key(run) not in done] + runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--families", default="markov,gru4rec,sasrec")
    parser.add_argument("--losses", default=",".join(LOSSES))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output", type=Path, default=RESULTS / "sequential_speed.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = TrainingOptions().torch_device()
    runs = []
    for dataset in args.datasets.split(","):
        data = load_interactions(dataset)
        for family in args.families.split(","):
            losses = [None] if family == "markov" else args.losses.split(",")
            for loss in losses:
                result = {
                    "dataset": dataset,
                    "n_ratings": len(data),
                    "n_users": data.n_users,
                    "n_items": data.n_items,
                } | run_one(data, family, loss, args.epochs, args.seed)
                print(json.dumps(result), flush=True)
                runs.append(result)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    runs = _merged(args.output, runs)
    meta = {
        "device": device,
        "torch_threads": args.threads,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "cuda": torch.cuda.get_device_name() if device == "cuda" else None,
    }
    args.output.write_text(json.dumps({"meta": meta, "runs": runs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
