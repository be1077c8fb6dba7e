"""Keep freed host memory in the process, so XLA's CPU steps stop paying page faults.

An XLA CPU executable allocates its temporary buffers (tens to hundreds of MiB for a
train step) on every call. glibc serves an allocation that large with a fresh `mmap`
and returns it with `munmap`, so every step touches new pages and the kernel zeroes
each one: a quarter of the CPU time of the seed CNN's step on a 2-core machine went to
the kernel. `reuse_freed_memory()` turns glibc's `mmap` and trimming off, so freed
blocks stay in the heap and the next step reuses them, and runs single-device CPU
computations on the calling thread (JAX's CPU async dispatch off): that thread
allocates from glibc's main heap, where a large block can live. (A worker thread's
arena cannot grow past 64 MiB and falls back to `mmap`; limiting glibc to one arena
instead slowed XLA's multi-threaded compiler by seconds.) Most steps then reuse their
blocks; now and then one still gets fresh pages (tests/test_host_memory.py). Measured
effect: benchmarks/README.md, "Levers".

The price: the process keeps its peak heap until it exits, which suits a training or
evaluation process; and on the CPU the host no longer runs ahead of a step (the input
pipeline prefetches in its own threads). Multi-device computations still dispatch
asynchronously. It does nothing to malloc outside glibc (macOS, musl), and nothing at
all with MEDJAX_HOST_MALLOC=default.
"""
import ctypes
import ctypes.util
import os
import sys

import jax

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_SETTINGS = ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**31 - 1))


def reuse_freed_memory() -> bool:
  """Makes freed step buffers reusable (see the module docstring); returns whether
  glibc's malloc was set. Call it before JAX's first computation: the CPU client reads
  the dispatch setting when it starts."""
  if os.environ.get('MEDJAX_HOST_MALLOC') == 'default':
    return False
  jax.config.update('jax_cpu_enable_async_dispatch', False)
  if sys.platform != 'linux':
    return False
  try:
    mallopt = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6').mallopt
  except (OSError, AttributeError):  # not glibc
    return False
  return all(mallopt(option, value) == 1 for option, value in _SETTINGS)
