"""The launcher's host-memory setting: a CPU step's freed temporaries are reused
instead of being mapped (and page-faulted) anew on every call."""
import os
import subprocess
import sys

# In a fresh process, as the launcher does it: a jitted step with a 64 MiB temporary runs
# twice to warm up, then 7 times more; the child prints the minor page faults of each of
# those calls. With the setting most calls reuse the freed block, but not every one: now
# and then a call gets freshly mapped pages (1-4 of the 7 calls in 9 of 18 runs, 4 in 3
# of them, which flipped the median; likely the freed block split for small allocations
# in between). What the setting changes is whether calls reuse at all: without it, every
# call faults its temporary in.
_CHILD = """
import resource
from medjax import host_memory
applied = host_memory.reuse_freed_memory()
import jax, jax.numpy as jnp
x, w = jnp.ones((8192, 1024)), jnp.ones((1024, 8))
step = jax.jit(lambda x, w: jnp.sum(jnp.concatenate([x, x]) @ w))
for _ in range(2):
  jax.block_until_ready(step(x, w))
faults = []
for _ in range(7):
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  jax.block_until_ready(step(x, w))
  faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(applied, *faults)
"""
# A fresh 64 MiB buffer faults at least once per 2 MiB (transparent huge pages) and up
# to once per 4 KiB page.
MIN_FAULTS_PER_FRESH_BUFFER = 64 // 2


def _run_child(host_malloc: str) -> tuple[bool, list[int]]:
  """Whether the setting was applied, and each timed call's minor page faults."""
  env = dict(os.environ, MEDJAX_HOST_MALLOC=host_malloc)
  result = subprocess.run([sys.executable, '-c', _CHILD], env=env, capture_output=True,
                          text=True, check=True)
  applied, *faults = result.stdout.split()
  return applied == 'True', [int(count) for count in faults]


def test_step_temporaries_are_reused_without_page_faults():
  applied, faults = _run_child('reuse')
  assert applied
  assert min(faults) < 0.2 * MIN_FAULTS_PER_FRESH_BUFFER, faults


def test_default_malloc_faults_on_every_step():
  # What the setting removes: glibc maps each step's temporary anew.
  applied, faults = _run_child('default')
  assert not applied
  assert min(faults) >= MIN_FAULTS_PER_FRESH_BUFFER, faults
