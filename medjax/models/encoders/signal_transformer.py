"""A Transformer over a signal's patches: non-overlapping windows of `patch_size`
samples embedded by one strided convolution (the signal padded with zeros at the end
to a whole number of patches), a class token, learned position embeddings and the
ViT's pre-norm encoder blocks. The embedding is the normalised class token.
"""
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from medjax.config import ConfigError
from medjax.models.encoders.vit import encode_tokens
from medjax.models.layers import Conv1D

MODALITY = 'signal'
CONFIG = {'model.signal_transformer.patch_size': 16, 'model.signal_transformer.width': 64,
          'model.signal_transformer.depth': 3, 'model.signal_transformer.num_heads': 4,
          'model.signal_transformer.mlp_dim': 128, 'model.signal_transformer.dropout': 0.1}
HEAD_ZERO_INIT = True


def check_config(model_config) -> None:
  cfg = model_config.signal_transformer
  if min(cfg.patch_size, cfg.width, cfg.depth, cfg.num_heads, cfg.mlp_dim) < 1:
    raise ConfigError(f'model.signal_transformer: sizes must be positive (got {cfg.to_dict()})')
  if cfg.width % cfg.num_heads:
    raise ConfigError(f'model.signal_transformer.width={cfg.width} is not divisible by '
                      f'num_heads={cfg.num_heads}')


class SignalTransformer(nn.Module):
  patch_size: int = 16
  width: int = 64
  depth: int = 3
  num_heads: int = 4
  mlp_dim: int = 128
  dropout: float = 0.1
  conv_impl: str = 'matmul'
  dtype: Any = jnp.float32
  remat: bool = False

  @nn.compact
  def __call__(self, x, *, train: bool):
    x = x.astype(self.dtype)
    padding = -x.shape[1] % self.patch_size
    x = jnp.pad(x, ((0, 0), (0, padding), (0, 0)))
    x = Conv1D(self.width, self.patch_size, self.patch_size, padding='VALID',
               conv_impl=self.conv_impl, dtype=self.dtype, name='patch_embedding')(x)
    return encode_tokens(self, x, depth=self.depth, num_heads=self.num_heads,
                         mlp_dim=self.mlp_dim, dropout=self.dropout, train=train)


def build(model_config, spec, *, dtype, conv_impl) -> SignalTransformer:
  cfg = model_config.signal_transformer
  return SignalTransformer(patch_size=cfg.patch_size, width=cfg.width, depth=cfg.depth,
                           num_heads=cfg.num_heads, mlp_dim=cfg.mlp_dim, dropout=cfg.dropout,
                           conv_impl=conv_impl, dtype=dtype, remat=model_config.remat)
