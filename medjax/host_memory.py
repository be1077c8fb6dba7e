"""Keep freed host memory in the process, so XLA's CPU steps stop paying page faults.

An XLA CPU executable allocates its temporary buffers (tens to hundreds of MiB for a
train step) on every call, from a worker thread. glibc serves an allocation that large
with a fresh `mmap` and returns it with `munmap`, so each step touches new pages and
the kernel zeroes every one of them: a quarter of the CPU time of the seed CNN's step
on a 2-core machine went to the kernel. With one malloc arena, no `mmap` and no
trimming, freed blocks are reused from the heap instead (see benchmarks/README.md,
"Levers", for the measured effect).

The price is that the process keeps its peak heap until it exits, which is what a
training or evaluation process wants. Call `reuse_freed_memory()` before JAX starts its
threads (the experiment launcher does); it must run before other threads pick their
malloc arena. It does nothing outside glibc (macOS, musl) or with
MEDJAX_HOST_MALLOC=default.
"""
import ctypes
import ctypes.util
import os
import sys

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
_SETTINGS = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**31 - 1))


def reuse_freed_memory() -> bool:
  """Sets glibc's malloc to reuse freed memory; returns whether it was set."""
  if sys.platform != 'linux' or os.environ.get('MEDJAX_HOST_MALLOC') == 'default':
    return False
  try:
    mallopt = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6').mallopt
  except (OSError, AttributeError):  # not glibc
    return False
  return all(mallopt(option, value) == 1 for option, value in _SETTINGS)
