"""The seed CNN: the small convolutional image encoder the project started from.

Conv32-Pool-Conv64-Pool-Conv128-Pool-Dense512, 3x3 'SAME' convolutions, ReLU, 2x2
max pooling (3x3x3 and 2x2x2 for volumes), dropout on the 512-wide embedding (the head
follows). Taps (for
Grad-CAM): `block0`..`block2`, the ReLU outputs before each pooling.
"""
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from medjax.models.conv import CONV_IMPLS
from medjax.models.pool import max_pool
from medjax.models.taps import tap


MODALITY = 'image'
CONFIG = {'model.cnn.dropout': 0.5}
GRAD_CAM_LAYER = 'block2'


class SeedCNN(nn.Module):
  features: Sequence[int] = (32, 64, 128)
  hidden: int = 512
  dropout: float = 0.5
  conv_impl: str = 'matmul'
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, *, train: bool):
    x = x.astype(self.dtype)
    for index, width in enumerate(self.features):
      cube = lambda size: (size,) * (x.ndim - 2)  # 2-D images, 3-D volumes
      x = nn.Conv(width, cube(3), padding='SAME', dtype=self.dtype,
                  conv_general_dilated=CONV_IMPLS[self.conv_impl])(x)
      x = tap(self, f'block{index}', nn.relu(x))
      x = max_pool(x, cube(2), cube(2))
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype)(x))
    return nn.Dropout(self.dropout, deterministic=not train)(x)


def build(model_config, spec, *, dtype, conv_impl) -> SeedCNN:
  return SeedCNN(dropout=model_config.cnn.dropout, conv_impl=conv_impl, dtype=dtype)
