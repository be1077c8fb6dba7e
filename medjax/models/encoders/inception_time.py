"""InceptionTime (Ismail Fawaz et al. 2020): a stack of Inception modules over time.

Each module: a 1x1 bottleneck, three convolutions of kernel k, k/2 and k/4 (k =
`kernel_size`, made odd) and a 3-wide max pool followed by a 1x1 convolution, their
outputs concatenated (4 x `filters`), BatchNorm and ReLU. A shortcut (1x1 convolution
and BatchNorm) joins every third module. Global average pooling gives the embedding.
The paper ensembles five such networks; this is one (ensembles are separate runs).
Taps: `module0`.. after each module.
"""
import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from medjax.config import ConfigError
from medjax.models.layers import Conv1D, batch_norm
from medjax.models.taps import tap

MODALITY = 'signal'
CONFIG = {'model.inception_time.depth': 6, 'model.inception_time.filters': 32,
          'model.inception_time.kernel_size': 40, 'model.inception_time.bottleneck': 32}
RESIDUAL_EVERY = 3


def check_config(model_config) -> None:
  cfg = model_config.inception_time
  if min(cfg.depth, cfg.filters, cfg.bottleneck) < 1 or cfg.kernel_size < 4:
    raise ConfigError('model.inception_time: depth, filters and bottleneck must be positive '
                      f'and kernel_size at least 4 (got {cfg.to_dict()})')


class InceptionModule(nn.Module):
  filters: int
  kernel_size: int
  bottleneck: int
  conv: Any
  norm: Any

  @nn.compact
  def __call__(self, x):
    y = self.conv(self.bottleneck, 1)(x) if x.shape[-1] > 1 else x
    kernels = [max(self.kernel_size // 2**i, 2) - 1 for i in range(3)]  # 39, 19, 9
    branches = [self.conv(self.filters, k)(y) for k in kernels]
    pooled = nn.max_pool(x, (3,), (1,), padding='SAME')
    branches.append(self.conv(self.filters, 1)(pooled))
    return nn.relu(self.norm()(jnp.concatenate(branches, -1)))


class InceptionTime(nn.Module):
  depth: int = 6
  filters: int = 32
  kernel_size: int = 40
  bottleneck: int = 32
  conv_impl: str = 'matmul'
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, *, train: bool):
    conv = functools.partial(Conv1D, use_bias=False, conv_impl=self.conv_impl, dtype=self.dtype)
    norm = batch_norm(train=train, dtype=self.dtype)
    x = x.astype(self.dtype)
    residual = x
    for index in range(self.depth):
      x = InceptionModule(self.filters, self.kernel_size, self.bottleneck, conv, norm)(x)
      if index % RESIDUAL_EVERY == RESIDUAL_EVERY - 1:
        x = nn.relu(x + norm()(conv(x.shape[-1], 1)(residual)))
        residual = x
      x = tap(self, f'module{index}', x)
    return jnp.mean(x, axis=1)


def build(model_config, spec, *, dtype, conv_impl) -> InceptionTime:
  cfg = model_config.inception_time
  return InceptionTime(depth=cfg.depth, filters=cfg.filters, kernel_size=cfg.kernel_size,
                       bottleneck=cfg.bottleneck, conv_impl=conv_impl, dtype=dtype)
