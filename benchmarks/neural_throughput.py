"""Training throughput of the neural families (interactions per second per epoch) and Mult-VAE epoch time.

    .venv/bin/python -m benchmarks.neural_throughput
    .venv/bin/python -m benchmarks.neural_throughput --families mult_vae --datasets ml-latest-small --epochs 3

On the 1M synthetic ratings of `benchmarks.fit_speed` (20,000 users, 10,000 items), each family
is fitted with its default config for `--epochs` epochs without a validation tail (so no early
stopping, no per-epoch validation and no refit). The figure is the number of training
interactions divided by the median epoch's training time (`epoch_seconds` of the history,
which leaves out validation): interactions per second. For the NCF families each interaction is
a positive pair trained with its `n_negatives` sampled negatives (1 + n_negatives scored pairs);
for the autoencoders it is one stored entry of a user's history row. First, Mult-VAE and Mult-DAE train for `--epochs` epochs on every
valid rating of ml-latest-small, and the median epoch time is reported (target: under 1 s on
2 cores). Each row is added to benchmarks/results/neural_throughput.json as soon as it is
measured (a row of the same dataset and family replaces the older one) and printed as JSON.
Times are wall-clock: other work on the machine changes them, so each row records the 1-minute
load average. One torch thread by default: beside other work, two threads on 2 cores ran the
Mult-VAE epoch 4-5 times slower than one (3.9 s against 0.8 s at a load of about 4.5).
"""

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Literal

import torch

from benchmarks.fit_speed import load_interactions
from recsys_models.interactions import Interactions
from recsys_models.options import TrainingOptions
from recsys_models.registry import family_class, make_config

RESULTS = Path(__file__).parent / "results"
FAMILIES = ("gmf", "mlp", "neumf", "mult_vae", "mult_dae")
AUTOENCODERS = ("mult_vae", "mult_dae")


def measure(
    family: str, data: Interactions, dataset: str, epochs: int, seed: int, device: Literal["cpu", "cuda", "auto"]
) -> dict:
    """Fit `family` for `epochs` epochs on `data` alone and summarise its per-epoch training time."""
    config = make_config(family, {"epochs": epochs})
    model = family_class(family)(config, TrainingOptions(seed=seed, device=device))
    started = time.perf_counter()
    model.fit(data)
    fit_seconds = time.perf_counter() - started
    epoch_seconds = statistics.median(record["epoch_seconds"] for record in model.history)
    return {
        "dataset": dataset,
        "family": family,
        "device": model.options.torch_device(),
        "threads": torch.get_num_threads(),
        "n_interactions": len(data),
        "n_users": data.n_users,
        "n_items": data.n_items,
        "epochs": len(model.history),
        "negatives_per_positive": getattr(config, "n_negatives", None) if family not in AUTOENCODERS else None,
        "median_epoch_seconds": round(epoch_seconds, 3),
        "interactions_per_second": round(len(data) / epoch_seconds),
        "fit_seconds": round(fit_seconds, 2),
        "load_average_1min": round(os.getloadavg()[0], 1),  # other work on the machine slows every figure
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--datasets", default="ml-latest-small,synthetic-1m")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    families = args.families.split(",")
    datasets = {"ml-latest-small": [name for name in families if name in AUTOENCODERS], "synthetic-1m": families}
    for dataset, names in ((name, datasets[name]) for name in args.datasets.split(",")):
        if not names:
            continue
        data = load_interactions(dataset)
        for family in names:
            row = measure(family, data, dataset, args.epochs, args.seed, args.device)
            print(json.dumps(row), flush=True)
            record(row)


def record(row: dict) -> None:
    """Add `row` to the results file, replacing an earlier row of the same dataset and family."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "neural_throughput.json"
    previous = json.loads(path.read_text())["runs"] if path.exists() else []
    kept = [old for old in previous if (old["dataset"], old["family"]) != (row["dataset"], row["family"])]
    path.write_text(json.dumps({"cpu_count": os.cpu_count(), "runs": kept + [row]}, indent=2) + "\n")


if __name__ == "__main__":
    main()
