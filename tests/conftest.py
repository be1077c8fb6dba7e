"""Test set-up: 8 forced CPU devices (before JAX is imported) and data directories.

Tests read real data through $MEDJAX_DATA_DIR (CI points it at ../shared/data)
and prepare TFDS files into a throw-away folder unless $MEDJAX_PREPARED_DIR is set.
"""
import os
import pathlib
import sys
import tempfile

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_force_host_platform_device_count=8').strip()
REPO = pathlib.Path(__file__).resolve().parents[1]
os.environ.setdefault('MEDJAX_DATA_DIR', str(REPO.parent / 'shared' / 'data'))
os.environ.setdefault('MEDJAX_PREPARED_DIR', tempfile.mkdtemp(prefix='medjax-prepared-'))
sys.path.insert(0, str(REPO))

import jax  # noqa: E402  (after XLA_FLAGS)
import pytest  # noqa: E402

from configs import common  # noqa: E402


@pytest.fixture(scope='session', autouse=True)
def eight_devices():
  assert jax.device_count() == 8, 'tests expect 8 forced CPU devices'


def small_config(model='cnn', data='medmnist/breastmnist'):
  """A config for fast tests: tiny models, few steps, no progress bar."""
  config = common.get_config()
  config.data.name = data
  config.model.name = model
  config.model.resnet.width = 8
  config.model.vit.update(patch_size=7, width=16, depth=1, num_heads=2, mlp_dim=32)
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
