"""A multilayer perceptron for tabular features (standardised by the pipeline)."""
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from medjax.config import ConfigError

MODALITY = 'tabular'
CONFIG = {'model.mlp.hidden': 64, 'model.mlp.layers': 2, 'model.mlp.dropout': 0.0}


def check_config(model_config) -> None:
  if model_config.mlp.hidden < 1 or model_config.mlp.layers < 1:
    raise ConfigError('model.mlp.hidden and model.mlp.layers must be positive')


class MLP(nn.Module):
  hidden: int = 64
  layers: int = 2
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, *, train: bool):
    x = x.astype(self.dtype)
    for _ in range(self.layers):
      x = nn.Dropout(self.dropout, deterministic=not train)(
          nn.relu(nn.Dense(self.hidden, dtype=self.dtype)(x)))
    return x


def build(model_config, spec, *, dtype, conv_impl) -> MLP:
  cfg = model_config.mlp
  return MLP(hidden=cfg.hidden, layers=cfg.layers, dropout=cfg.dropout, dtype=dtype)
