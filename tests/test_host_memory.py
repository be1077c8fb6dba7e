"""The host-allocator setting: freed step-sized buffers are reused without page faults."""
import os
import subprocess
import sys

# In a fresh process (the setting must come before other threads exist): a worker
# thread allocates, fills and frees a 64 MiB buffer 4 times, as XLA's CPU executor does
# with a step's temporaries, and prints the minor page faults of the last 3 rounds.
_CHILD = """
import resource, sys, threading
import numpy as np
from medjax import host_memory
applied = host_memory.reuse_freed_memory()
faults = []
def rounds():
  for _ in range(4):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    buffer = np.ones(16 * 2**20, np.float32)
    del buffer
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
worker = threading.Thread(target=rounds)
worker.start(); worker.join()
print(applied, sum(faults[1:]))
"""
# A fresh 64 MiB buffer faults at least once per 2 MiB (transparent huge pages) and up
# to once per 4 KiB page.
MIN_FAULTS_PER_FRESH_BUFFER = 64 // 2


def _run_child(host_malloc: str) -> tuple[bool, int]:
  env = dict(os.environ, MEDJAX_HOST_MALLOC=host_malloc)
  result = subprocess.run([sys.executable, '-c', _CHILD], env=env, capture_output=True,
                          text=True, check=True)
  applied, faults = result.stdout.split()
  return applied == 'True', int(faults)


def test_freed_buffers_are_reused_without_page_faults():
  applied, faults = _run_child('reuse')
  assert applied
  assert faults < 0.2 * MIN_FAULTS_PER_FRESH_BUFFER


def test_default_malloc_faults_on_every_round():
  # What the setting removes: glibc maps each freed 64 MiB buffer anew.
  applied, faults = _run_child('default')
  assert not applied
  assert faults >= 3 * MIN_FAULTS_PER_FRESH_BUFFER
