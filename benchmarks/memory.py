"""Peak resident memory of a block of code, sampled from /proc (numpy and torch allocations included)."""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


def _rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


@dataclass
class Measurement:
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    start_rss_mb: float = 0.0  # before the body: peak - start is what the body added


@contextmanager
def measure(interval: float = 0.02) -> Iterator[Measurement]:
    """Wall time and peak RSS (sampled every `interval` seconds) of the body."""
    result, peak, done = Measurement(), [_rss_bytes()], threading.Event()
    result.start_rss_mb = peak[0] / 2**20

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        yield result
    finally:
        result.seconds = time.perf_counter() - started
        done.set()
        sampler.join()
        result.peak_rss_mb = max(peak[0], _rss_bytes()) / 2**20
