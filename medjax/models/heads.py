"""The diagnoser: one encoder per input key, their embeddings joined, one head.

A single-input model is an encoder and a linear head. With several inputs (ECG beats
with their RR features; later image + text + tabular) the embeddings are
concatenated before the head. An optional input is multiplied by its batch flag
`<key>_present` (0 where the example lacks it), and the flag itself joins the
features, so the head can tell "absent" from "all zero". `embed` is the head's input
(the closed-form solver, medjax/train/ridge.py, fits the head on it).
"""
from typing import Any, Mapping

import flax.linen as nn
import jax.numpy as jnp


class Diagnoser(nn.Module):
  encoders: Mapping[str, nn.Module]  # input key -> encoder
  num_outputs: int
  optional_keys: tuple[str, ...] = ()
  head_zero_init: bool = False
  dtype: Any = jnp.float32

  def setup(self):
    init = nn.initializers.zeros if self.head_zero_init else nn.initializers.lecun_normal()
    self.head = nn.Dense(self.num_outputs, dtype=self.dtype, kernel_init=init)

  def embed(self, batch, *, train: bool):
    features = []
    for key, encoder in self.encoders.items():
      embedding = encoder(batch[key], train=train)
      if key in self.optional_keys:
        present = batch[f'{key}_present'].astype(embedding.dtype)[:, None]
        features += [embedding * present, present]
      else:
        features.append(embedding)
    return features[0] if len(features) == 1 else jnp.concatenate(features, -1)

  def __call__(self, batch, *, train: bool):
    return self.head(self.embed(batch, train=train)).astype(jnp.float32)
