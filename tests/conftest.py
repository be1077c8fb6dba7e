"""Test set-up: 8 forced CPU devices (before JAX is imported), the launcher's host-memory
setting and compilation cache (a throw-away one, shared with the command-line runs the
tests start, caching every program), and data directories.

Tests read real data through $MEDJAX_DATA_DIR (CI points it at ../shared/data)
and prepare TFDS files into a throw-away folder unless $MEDJAX_PREPARED_DIR is set.
"""
import os
import pathlib
import subprocess
import sys
import tempfile

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_force_host_platform_device_count=8').strip()
REPO = pathlib.Path(__file__).resolve().parents[1]
os.environ.setdefault('MEDJAX_DATA_DIR', str(REPO.parent / 'shared' / 'data'))
# pytest-xdist workers share one prepared-data folder (the registry's lock serialises
# preparation), so each data set is prepared once per test run.
_RUN = os.environ.get('PYTEST_XDIST_TESTRUNUID')
if _RUN and 'MEDJAX_PREPARED_DIR' not in os.environ:
  os.environ['MEDJAX_PREPARED_DIR'] = os.path.join(tempfile.gettempdir(), f'medjax-prepared-{_RUN}')
os.environ.setdefault('MEDJAX_PREPARED_DIR', tempfile.mkdtemp(prefix='medjax-prepared-'))
os.environ['MEDJAX_COMPILATION_CACHE_DIR'] = tempfile.mkdtemp(prefix='medjax-xla-cache-')
os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'
sys.path.insert(0, str(REPO))

import jax  # noqa: E402  (after XLA_FLAGS)
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from configs import common  # noqa: E402
from medjax import compilation_cache, host_memory  # noqa: E402

host_memory.reuse_freed_memory()  # as the experiment launcher does
compilation_cache.enable()


@pytest.fixture(scope='session', autouse=True)
def eight_devices():
  assert jax.device_count() == 8, 'tests expect 8 forced CPU devices'


def small_config(model='cnn', data='medmnist/breastmnist'):
  """A config for fast tests: tiny models, few steps, no progress bar."""
  config = common.get_config()
  config.data.name = data
  config.model.name = model
  config.model.resnet.update(depth=10, width=8)  # the ResNet-18 code path, half the blocks
  config.model.conv_impl = 'lax'  # compiles in half the time; tests/test_fast_ops.py checks matmul
  config.model.vit.update(patch_size=7, width=16, depth=1, num_heads=2, mlp_dim=32)
  config.model.resnet1d.width = 8
  config.model.inception_time.update(depth=3, filters=8, bottleneck=8, kernel_size=10)
  config.model.signal_transformer.update(patch_size=8, width=16, depth=1, num_heads=2,
                                         mlp_dim=32)
  config.model.mlp.hidden = 16
  config.model.rocket.kernels = 40
  config.train.steps = 6
  config.train.batch_size = 16
  config.train.log_every = 2
  config.train.eval_every = 3
  config.train.checkpoint_every = 3
  config.train.progress_bar = False
  config.data.eval_batch_size = 64
  return config


@pytest.fixture(scope='session')
def breast():
  import medjax.data
  return medjax.data.load(small_config().data)


def cli_env() -> dict:
  """The environment of a command-line run: one CPU device (these runs test the
  command line, not sharding), this checkout importable."""
  env = {**os.environ, 'PYTHONPATH': str(REPO)}
  env.pop('XLA_FLAGS')
  return env


def cli_command(*args) -> list[str]:
  return [sys.executable, '-m', 'medjax.experiment', *args]


def run_cli(*args, env=None):
  """`python -m medjax.experiment ARGS`; `env` entries replace the command-line
  environment's (e.g. an empty data directory)."""
  return subprocess.run(cli_command(*args), cwd=REPO, env={**cli_env(), **(env or {})},
                        capture_output=True, text=True, timeout=600)


# A tiny run with every step logged, validated and checkpointed (tests/test_faults.py
# interrupts it at an arbitrary step).
TINY = ['--config=configs/breast_cnn.py', '--config.train.steps=8', '--config.train.eval_every=1',
        '--config.train.checkpoint_every=1', '--config.train.log_every=1',
        '--config.train.batch_size=16', '--config.data.augment.rotation_degrees=10',
        '--config.train.progress_bar=False', '--config.data.eval_batch_size=64',
        '--config.explain.num_images=2', '--config.explain.smoothgrad_samples=2',
        '--config.explain.ig_steps=4', '--config.eval.bootstrap_resamples=100']


@pytest.fixture(scope='session')
def trained(tmp_path_factory):
  """One tiny training run through the command line, shared by the tests that read it
  (tests that change a workdir copy it first)."""
  workdir = tmp_path_factory.mktemp('cli') / 'run'
  result = run_cli(*TINY, f'--workdir={workdir}')
  assert result.returncode == 0, result.stderr[-3000:]
  return workdir


def _write_ucr_series(folder, name, rows):
  """A UCR-layout file `name` in `folder`: (label, values) rows."""
  folder.mkdir(parents=True, exist_ok=True)
  (folder / name).write_text(''.join('\t'.join([str(label)] + [f'{v:.4f}' for v in values]) + '\n'
                                     for label, values in rows))


@pytest.fixture(scope='session')
def three_shapes(tmp_path_factory):
  """A small UCR-layout data folder: sine, square and ramp series of length 32 in noise
  that no head separates on validation (a temperature has a finite optimum).
  `ucr/Shapes`: the three in equal numbers; `ucr/Skewed`: the ramp (label 3) 4 times as
  common; `ucr/Two`: sines and ramps (a binary task)."""
  data_dir = tmp_path_factory.mktemp('ucr_shapes')
  rng = np.random.default_rng(1)
  t = np.linspace(0, 1, 32)
  shapes = [np.sin(6 * t), np.sign(np.sin(6 * t)), 2 * t - 1]
  for name, label_of in (('Shapes', lambda k: k % 3), ('Skewed', lambda k: min(k % 6, 2)),
                         ('Two', lambda k: 2 * (k % 2))):
    for split, count in (('TRAIN', 60), ('TEST', 30)):
      rows = [(label_of(k) + 1,
               shapes[label_of(k)] * rng.uniform(0.8, 1.2) + rng.normal(0, 1.0, 32))
              for k in range(count)]
      _write_ucr_series(data_dir / 'ucr', f'{name}_{split}.tsv', rows)
  return data_dir
