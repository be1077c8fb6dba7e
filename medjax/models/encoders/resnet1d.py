"""The time-series ResNet of Wang et al. (2017), "Time series classification from
scratch with deep neural networks: a strong baseline".

Three residual blocks of width (1, 2, 2) x `model.resnet1d.width` (64, 128, 128);
each block is three convolutions of kernel 8, 5 and 3 with BatchNorm and ReLU, plus a
(projected) shortcut; global average pooling over time gives the embedding. Taps
(for Grad-CAM over time): `block0`..`block2`.
"""
import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from medjax.config import ConfigError
from medjax.models.layers import Conv1D, DropPath, batch_norm, drop_path_rates
from medjax.models.taps import tap

MODALITY = 'signal'
CONFIG = {'model.resnet1d.width': 64,
          'model.resnet1d.drop_path': 0.0}  # stochastic depth of the last block (0: off)
GRAD_CAM_LAYER = 'block2'
KERNELS = (8, 5, 3)
WIDTHS = (1, 2, 2)


def check_config(model_config) -> None:
  if model_config.resnet1d.width < 1:
    raise ConfigError(f'model.resnet1d.width={model_config.resnet1d.width} must be positive')
  if not 0.0 <= model_config.resnet1d.drop_path < 1.0:
    raise ConfigError(f'model.resnet1d.drop_path={model_config.resnet1d.drop_path} must be '
                      'in [0, 1)')


class ResNet1D(nn.Module):
  width: int = 64
  conv_impl: str = 'matmul'
  dtype: Any = jnp.float32
  drop_path: float = 0.0

  @nn.compact
  def __call__(self, x, *, train: bool):
    conv = functools.partial(Conv1D, use_bias=False, conv_impl=self.conv_impl, dtype=self.dtype)
    norm = batch_norm(train=train, dtype=self.dtype)
    x = x.astype(self.dtype)
    rates = drop_path_rates(self.drop_path, len(WIDTHS))
    for index, multiple in enumerate(WIDTHS):
      features = self.width * multiple
      y = x
      for position, kernel in enumerate(KERNELS):
        y = norm()(conv(features, kernel)(y))
        if position < len(KERNELS) - 1:
          y = nn.relu(y)
      y = DropPath(rates[index])(y, deterministic=not train)
      shortcut = x if x.shape[-1] == features else conv(features, 1)(x)
      x = tap(self, f'block{index}', nn.relu(norm()(shortcut) + y))
    return jnp.mean(x, axis=1)


def build(model_config, spec, *, dtype, conv_impl) -> ResNet1D:
  return ResNet1D(width=model_config.resnet1d.width, conv_impl=conv_impl, dtype=dtype,
                  drop_path=model_config.resnet1d.drop_path)
