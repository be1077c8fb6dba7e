"""The seed CNN: the small convolutional diagnoser the project started from.

Conv32-Pool-Conv64-Pool-Conv128-Pool-Dense512-Dense, 3x3 'SAME' convolutions,
ReLU, 2x2 max pooling, dropout before the classifier. Taps (for Grad-CAM):
`block0`..`block2`, the ReLU outputs before each pooling.
"""
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from medjax.models.conv import CONV_IMPLS
from medjax.models.pool import max_pool
from medjax.models.taps import tap


class SeedCNN(nn.Module):
  num_outputs: int
  features: Sequence[int] = (32, 64, 128)
  hidden: int = 512
  dropout: float = 0.5
  conv_impl: str = 'matmul'
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, batch, *, train: bool):
    x = batch['image'].astype(self.dtype)
    for index, width in enumerate(self.features):
      x = nn.Conv(width, (3, 3), padding='SAME', dtype=self.dtype,
                  conv_general_dilated=CONV_IMPLS[self.conv_impl])(x)
      x = tap(self, f'block{index}', nn.relu(x))
      x = max_pool(x, (2, 2), (2, 2))
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype)(x))
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(self.num_outputs, dtype=self.dtype)(x).astype(jnp.float32)
