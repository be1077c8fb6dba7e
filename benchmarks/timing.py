"""The one timing rule of the benchmarks: the median of repeated calls, after warm-up."""
import statistics
import time


def median_seconds(run_once, repeats: int, warmup: int = 1) -> float:
  """Median wall time of `run_once()` (which must block until its work is done)."""
  for _ in range(warmup):
    run_once()
  times = []
  for _ in range(repeats):
    started = time.perf_counter()
    run_once()
    times.append(time.perf_counter() - started)
  return statistics.median(times)
