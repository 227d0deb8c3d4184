"""Load time of the champion pyfunc and latency of a 100-user top-10 request (in-process predict).

RECSYS_WORKSPACE=workspace .venv/bin/python -m benchmarks.serving_latency --model recsys
"""

import argparse
import json
import os
import statistics
import time

import mlflow
import pandas as pd

from tasks.workspace import Workspace, configure_environment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="recsys")
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    workspace = Workspace.from_env()
    configure_environment(workspace)
    mlflow.set_tracking_uri(workspace.tracking_uri())
    started = time.perf_counter()
    model = mlflow.pyfunc.load_model(f"models:/{args.model}@champion")
    load_seconds = time.perf_counter() - started
    users = model.unwrap_python_model().model.users.ids[: args.users]
    request = pd.DataFrame({"user_id": users})
    latencies = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        model.predict(request, params={"k": 10})
        latencies.append(time.perf_counter() - started)
    print(
        json.dumps(
            {
                "model": args.model,
                "family": model.unwrap_python_model().model.family,
                "load_seconds": round(load_seconds, 2),
                "users": len(users),
                "p50_ms": round(1000 * statistics.median(latencies), 1),
                "max_ms": round(1000 * max(latencies), 1),
                "threads": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
