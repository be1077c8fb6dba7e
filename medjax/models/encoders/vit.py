"""Vision Transformer (Dosovitskiy et al. 2021): patch embedding, a class token,
learned position embeddings and pre-norm encoder blocks; the embedding is the
normalised class token (its head starts at zero, as in the original).

`stem='patch'` embeds non-overlapping patches with one strided convolution (the
original ViT); `stem='conv'` reaches the patch size with 3x3 stride-2
convolutions instead (Xiao et al. 2021, "Early convolutions help transformers
see better"), which trains better from scratch on small data sets.
"""
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from medjax.config import ConfigError

MODALITY = 'image'
CONFIG = {'model.vit.patch_size': 4, 'model.vit.width': 192, 'model.vit.depth': 6,
          'model.vit.num_heads': 3, 'model.vit.mlp_dim': 768, 'model.vit.dropout': 0.0,
          'model.vit.stem': 'patch'}
HEAD_ZERO_INIT = True


class EncoderBlock(nn.Module):
  num_heads: int
  mlp_dim: int
  dropout: float
  dtype: Any
  train: bool

  @nn.compact
  def __call__(self, x):
    train = self.train
    y = nn.LayerNorm(dtype=self.dtype)(x)
    y = nn.MultiHeadDotProductAttention(num_heads=self.num_heads, dtype=self.dtype,
                                        dropout_rate=self.dropout,
                                        deterministic=not train)(y, y)
    x = x + nn.Dropout(self.dropout, deterministic=not train)(y)
    y = nn.LayerNorm(dtype=self.dtype)(x)
    y = nn.gelu(nn.Dense(self.mlp_dim, dtype=self.dtype)(y))
    y = nn.Dense(x.shape[-1], dtype=self.dtype)(y)
    return x + nn.Dropout(self.dropout, deterministic=not train)(y)


def encode_tokens(module: nn.Module, x, *, depth: int, num_heads: int, mlp_dim: int,
                  dropout: float, train: bool):
  """The Transformer over embedded tokens (B, N, width), shared by the ViT and the
  signal Transformer: a class token, learned position embeddings, pre-norm blocks and
  the normalised class token out. Called inside `module`'s compact `__call__`, so the
  parameters are `module`'s own (`cls`, `pos_embedding`, `EncoderBlock_<i>`)."""
  dtype = module.dtype
  cls = module.param('cls', nn.initializers.zeros, (1, 1, x.shape[-1]))
  x = jnp.concatenate([jnp.tile(cls.astype(dtype), (x.shape[0], 1, 1)), x], axis=1)
  pos = module.param('pos_embedding', nn.initializers.normal(0.02), (1,) + x.shape[1:])
  x = x + pos.astype(dtype)
  # Explicit names keep the parameter tree the same with and without remat.
  block = nn.remat(EncoderBlock) if module.remat else EncoderBlock
  for index in range(depth):
    x = block(num_heads, mlp_dim, dropout, dtype, train, parent=module,
              name=f'EncoderBlock_{index}')(x)
  return nn.LayerNorm(dtype=dtype, parent=module)(x[:, 0])


class ViT(nn.Module):
  patch_size: int = 4
  width: int = 192
  depth: int = 6
  num_heads: int = 3
  mlp_dim: int = 768
  dropout: float = 0.0
  stem: str = 'patch'
  dtype: Any = jnp.float32
  remat: bool = False  # recompute each block's activations in the backward pass

  @nn.compact
  def __call__(self, x, *, train: bool):
    x = x.astype(self.dtype)
    p = self.patch_size
    if self.stem == 'conv':
      features = self.width // p
      while p > 1:  # patch_size is a power of two (checked by models.build)
        x = nn.relu(nn.LayerNorm(dtype=self.dtype)(
            nn.Conv(features, (3, 3), strides=(2, 2), dtype=self.dtype)(x)))
        features, p = features * 2, p // 2
      x = nn.Conv(self.width, (1, 1), dtype=self.dtype, name='patch_embedding')(x)
    else:
      x = nn.Conv(self.width, (p, p), strides=(p, p), padding='VALID', dtype=self.dtype,
                  name='patch_embedding')(x)
    x = x.reshape((x.shape[0], -1, self.width))
    return encode_tokens(self, x, depth=self.depth, num_heads=self.num_heads,
                         mlp_dim=self.mlp_dim, dropout=self.dropout, train=train)


def check_config(model_config) -> None:
  cfg = model_config.vit
  if cfg.stem not in ('patch', 'conv'):
    raise ConfigError(f"model.vit.stem={cfg.stem!r} is not one of ('patch', 'conv')")
  if cfg.patch_size < 1 or (cfg.stem == 'conv' and cfg.patch_size & (cfg.patch_size - 1)):
    raise ConfigError(f'model.vit.patch_size={cfg.patch_size}: positive, and a power of two '
                      'for the conv stem')
  if cfg.num_heads < 1 or cfg.width % cfg.num_heads:
    raise ConfigError(f'model.vit.width={cfg.width} is not divisible by '
                      f'model.vit.num_heads={cfg.num_heads}')


def build(model_config, spec, *, dtype, conv_impl) -> ViT:
  cfg = model_config.vit
  if len(spec.shape) != 3:
    raise ConfigError(f'model.name=vit reads 2-D images (H, W, C), not inputs of shape '
                      f'{spec.shape}; for volumes use resnet or cnn')
  height, width = spec.shape[:2]
  if height % cfg.patch_size or width % cfg.patch_size:
    raise ConfigError(f'model.vit.patch_size={cfg.patch_size} does not divide the '
                      f'{height}x{width} images')
  return ViT(patch_size=cfg.patch_size, width=cfg.width, depth=cfg.depth,
             num_heads=cfg.num_heads, mlp_dim=cfg.mlp_dim, dropout=cfg.dropout, stem=cfg.stem,
             dtype=dtype, remat=model_config.remat)
