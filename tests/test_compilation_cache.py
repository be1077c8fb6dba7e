"""The launcher's persistent compilation cache: a second process loads what the first
compiled, with the same numbers, and `off` turns it off."""
import subprocess
import sys

from tests.conftest import cli_env

# In a fresh process, as the launcher does it: enable the cache, compile one step, and
# print the cache folder, the persistent-cache hits and the step's output.
_CHILD = """
import jax, jax.numpy as jnp
from jax import monitoring
from medjax import compilation_cache
hits = []
monitoring.register_event_listener(
    lambda event, **_: hits.append(event) if event == '/jax/compilation_cache/cache_hits' else None)
directory = compilation_cache.enable()
x = jnp.linspace(0.0, 1.0, 4096).reshape(64, 64)
step = jax.jit(lambda x: jnp.tanh(x @ x.T).sum(axis=0))
print(directory, len(hits), [float(v).hex() for v in step(x)[:3]])
"""


def _run_child(cache_setting: str) -> tuple[str, int, str]:
  env = dict(cli_env(), MEDJAX_COMPILATION_CACHE_DIR=cache_setting,
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0')
  result = subprocess.run([sys.executable, '-c', _CHILD], env=env, capture_output=True,
                          text=True, check=True)
  directory, hits, outputs = result.stdout.split(maxsplit=2)
  return directory, int(hits), outputs


def test_a_second_process_loads_the_compiled_step_with_the_same_numbers(tmp_path):
  cache = tmp_path / 'xla'
  directory, hits, first_outputs = _run_child(str(cache))
  assert directory == str(cache) and hits == 0
  assert list(cache.iterdir()), 'nothing was written to the cache'
  _, hits, second_outputs = _run_child(str(cache))
  assert hits >= 1
  assert second_outputs == first_outputs


def test_off_turns_the_cache_off():
  directory, hits, _ = _run_child('off')
  assert directory == 'None' and hits == 0
