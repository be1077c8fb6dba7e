"""ROCKET (Dempster et al. 2020, "ROCKET: exceptionally fast and accurate time series
classification using random convolutional kernels"): the classic baseline of
time-series classification beside the deep signal encoders.

`model.rocket.kernels` random convolutions, fixed after they are drawn: length 7, 9 or
11, weights N(0, 1) centred to mean zero (over every channel of the signal), bias
U(-1, 1), dilation 2^U(0, log2((L - 1) / (length - 1))) rounded down, and zero padding
of half the dilated length on both sides for half of them. Each kernel gives two
features of the signal, the proportion of positive values (PPV) and the maximum; they
are standardised (a BatchNorm without scale or offset: the running training statistics
at evaluation) and the diagnoser's linear head, started at zero, is the linear
classifier: the paper's logistic-regression form trained by the loop, or its ridge
classifier in closed form (`train.solver='ridge'`, configs/ecg5000_rocket_ridge.py).

The kernels are drawn from `model.rocket.kernel_seed` (a config may tie it to the run's
seed, as configs/ecg5000_rocket_ridge.py does) and are constants of the program:
nothing of them is trained or checkpointed, and the same config draws the same kernels
on any machine (numpy's PCG64).
"""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from medjax.config import ConfigError

MODALITY = 'signal'
CONFIG = {'model.rocket.kernels': 10000,
          'model.rocket.kernel_seed': 0}
HEAD_ZERO_INIT = True
LENGTHS = (7, 9, 11)


def check_config(model_config) -> None:
  if model_config.rocket.kernels < 1:
    raise ConfigError(f'model.rocket.kernels={model_config.rocket.kernels} must be positive')


def draw_kernels(count: int, length: int, channels: int, seed: int) -> list[dict]:
  """The random kernels, grouped by (length, dilation, padding) so that each group is
  one convolution: [{'length', 'dilation', 'padding', 'weights' (length, channels, n),
  'bias' (n,)}]."""
  rng = np.random.default_rng(seed)
  lengths = rng.choice(LENGTHS, count)
  weights = rng.standard_normal((count, max(LENGTHS), channels))
  bias = rng.uniform(-1.0, 1.0, count)
  spans = np.log2(max(length - 1, 1) / (lengths - 1))
  dilations = np.floor(2.0 ** rng.uniform(0.0, np.maximum(spans, 0.0))).astype(int)
  padded = rng.integers(0, 2, count).astype(bool)
  groups = {}
  for index in range(count):
    size, dilation = int(lengths[index]), int(dilations[index])
    padding = (size - 1) * dilation // 2 if padded[index] else 0
    groups.setdefault((size, dilation, padding), []).append(index)
  kernels = []
  for (size, dilation, padding), members in sorted(groups.items()):
    kernel = weights[members, :size]
    kernel = kernel - kernel.mean(axis=(1, 2), keepdims=True)
    kernels.append({'length': size, 'dilation': dilation, 'padding': padding,
                    'weights': np.transpose(kernel, (1, 2, 0)).astype(np.float32),
                    'bias': bias[members].astype(np.float32)})
  return kernels


class Rocket(nn.Module):
  kernels: int = 10000
  kernel_seed: int = 0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, *, train: bool):
    x = x.astype(jnp.float32)
    features = []
    for group in draw_kernels(self.kernels, x.shape[1], x.shape[2], self.kernel_seed):
      if (group['length'] - 1) * group['dilation'] >= x.shape[1] + 2 * group['padding']:
        continue  # a kernel longer than the (short) signal has no output
      y = jax.lax.conv_general_dilated(
          x, jnp.asarray(group['weights']), window_strides=(1,),
          padding=[(group['padding'], group['padding'])], rhs_dilation=(group['dilation'],),
          dimension_numbers=('NWC', 'WIO', 'NWC')) + group['bias']
      features += [jnp.mean(y > 0, axis=1, dtype=jnp.float32), jnp.max(y, axis=1)]
    features = jnp.concatenate(features, axis=-1)
    features = nn.BatchNorm(use_running_average=not train, momentum=0.9, use_scale=False,
                            use_bias=False)(features)
    return features.astype(self.dtype)


def build(model_config, spec, *, dtype, conv_impl) -> Rocket:
  return Rocket(kernels=model_config.rocket.kernels,
                kernel_seed=model_config.rocket.kernel_seed, dtype=dtype)
