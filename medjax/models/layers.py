"""Layers shared by the encoders."""
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from medjax.models.conv import CONV_IMPLS


class Conv1D(nn.Module):
  """A convolution over time, (B, L, C) -> (B, L / strides, features), written as a
  (1, k) convolution of a (B, 1, L, C) map so that `conv_impl='matmul'` (im2col, the
  fast form on CPUs; medjax/models/conv.py) applies to signals too."""
  features: int
  kernel_size: int
  strides: int = 1
  padding: str = 'SAME'
  use_bias: bool = True
  conv_impl: str = 'matmul'
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    y = nn.Conv(self.features, (1, self.kernel_size), (1, self.strides), padding=self.padding,
                use_bias=self.use_bias, dtype=self.dtype,
                conv_general_dilated=CONV_IMPLS[self.conv_impl])(x[:, None])
    return y[:, 0]


def batch_norm(*, train: bool, dtype) -> functools.partial:
  """BatchNorm as the convolutional encoders use it: PyTorch's defaults (running
  averages updated with momentum 0.1, Flax's 0.9; epsilon 1e-5), as their twins have."""
  return functools.partial(nn.BatchNorm, use_running_average=not train, momentum=0.9,
                           epsilon=1e-5, dtype=dtype)


class DropPath(nn.Module):
  """Stochastic depth (Huang et al. 2016): in training, the residual branch of each
  example is dropped with probability `rate` and scaled by 1 / (1 - rate) otherwise;
  the identity at evaluation. Draws from the 'dropout' stream."""
  rate: float = 0.0

  @nn.compact
  def __call__(self, x, *, deterministic: bool):
    if deterministic or not self.rate:
      return x
    keep = 1.0 - self.rate
    kept = jax.random.bernoulli(self.make_rng('dropout'), keep, (x.shape[0],) + (1,) * (x.ndim - 1))
    return jnp.where(kept, x / keep, jnp.zeros_like(x))


def drop_path_rates(rate: float, blocks: int) -> list[float]:
  """Per-block stochastic-depth rates rising linearly from 0 to `rate` (the last block),
  as in Huang et al. and timm."""
  return [rate * index / max(blocks - 1, 1) for index in range(blocks)]
