"""ResNet-10/18/34/50 (He et al. 2016) with BatchNorm, for small medical images and, with
3-D convolutions throughout, volumes (D, H, W, C). ResNet-10 (one basic block a stage)
is the small 3-D backbone of MedicalNet (Chen et al. 2019) and MONAI's `resnet10`.

Two stems (`model.resnet.stem`):
  * 'imagenet': 7x7/2 convolution + 3x3/2 max pool (the torchvision stem);
  * 'cifar': one 3x3/1 convolution and no pooling, as MedMNIST v2 used at 28 px
    (keeps the full resolution: about 16x the compute of 'imagenet' at 28 px);
  * 'stride2': one 3x3/2 convolution and no pooling: a quarter of the 'cifar'
    compute that still keeps a 2x2 map in the last stage at 28 px.
Taps (for Grad-CAM): `stage0`..`stage3`, the output of each stage.
"""
import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from medjax.models.conv import CONV_IMPLS
from medjax.models.layers import DropPath, batch_norm, drop_path_rates
from medjax.models.pool import max_pool
from medjax.models.taps import tap

from medjax.config import ConfigError

STAGE_SIZES = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3)}
STEMS = ('imagenet', 'cifar', 'stride2')
MODALITY = 'image'
CONFIG = {'model.resnet.depth': 18, 'model.resnet.width': 64, 'model.resnet.stem': 'cifar',
          'model.resnet.drop_path': 0.0}  # stochastic depth of the last block (0: off)
GRAD_CAM_LAYER = 'stage2'


def check_config(model_config) -> None:
  cfg = model_config.resnet
  if cfg.depth not in STAGE_SIZES:
    raise ConfigError(f'model.resnet.depth={cfg.depth} is not one of {sorted(STAGE_SIZES)}')
  if cfg.stem not in STEMS:
    raise ConfigError(f'model.resnet.stem={cfg.stem!r} is not one of {STEMS}')
  if cfg.width < 1:
    raise ConfigError(f'model.resnet.width={cfg.width} must be positive')
  if not 0.0 <= cfg.drop_path < 1.0:
    raise ConfigError(f'model.resnet.drop_path={cfg.drop_path} must be in [0, 1)')


def _kernel(size: int, x) -> tuple[int, ...]:
  """A cubic kernel of `size` for the spatial axes of `x` (2 for images, 3 for volumes)."""
  return (size,) * (x.ndim - 2)


def _add_shortcut(residual, y, block):
  """Adds the (projected, where shapes differ) input to the block's output, the
  output dropped by stochastic depth."""
  if residual.shape != y.shape:
    residual = block.norm()(block.conv(y.shape[-1], _kernel(1, y), block.strides)(residual))
  y = DropPath(block.drop_path)(y, deterministic=block.deterministic)
  return nn.relu(residual + y)


class BasicBlock(nn.Module):
  features: int
  strides: int
  conv: Any
  norm: Any
  drop_path: float = 0.0
  deterministic: bool = True

  @nn.compact
  def __call__(self, x):
    y = self.conv(self.features, _kernel(3, x), self.strides)(x)
    y = nn.relu(self.norm()(y))
    y = self.conv(self.features, _kernel(3, x))(y)
    y = self.norm(scale_init=nn.initializers.zeros)(y)
    return _add_shortcut(x, y, self)


class BottleneckBlock(nn.Module):
  features: int
  strides: int
  conv: Any
  norm: Any
  drop_path: float = 0.0
  deterministic: bool = True

  @nn.compact
  def __call__(self, x):
    y = nn.relu(self.norm()(self.conv(self.features, _kernel(1, x))(x)))
    y = nn.relu(self.norm()(self.conv(self.features, _kernel(3, x), self.strides)(y)))
    y = self.conv(self.features * 4, _kernel(1, x))(y)
    y = self.norm(scale_init=nn.initializers.zeros)(y)
    return _add_shortcut(x, y, self)


class ResNet(nn.Module):
  depth: int = 18
  width: int = 64
  stem: str = 'cifar'
  conv_impl: str = 'matmul'
  dtype: Any = jnp.float32
  remat: bool = False  # recompute each block's activations in the backward pass
  drop_path: float = 0.0

  @nn.compact
  def __call__(self, x, *, train: bool):
    conv = functools.partial(nn.Conv, use_bias=False, padding='SAME', dtype=self.dtype,
                             conv_general_dilated=CONV_IMPLS[self.conv_impl])
    norm = batch_norm(train=train, dtype=self.dtype)
    block_class = BottleneckBlock if self.depth >= 50 else BasicBlock
    # Explicit names keep the parameter tree the same with and without remat.
    block = nn.remat(block_class) if self.remat else block_class
    count = 0
    rates = drop_path_rates(self.drop_path, sum(STAGE_SIZES[self.depth]))
    x = x.astype(self.dtype)
    if self.stem == 'imagenet':
      x = conv(self.width, _kernel(7, x), 2, name='stem_conv')(x)
      x = nn.relu(norm(name='stem_bn')(x))
      x = max_pool(x, _kernel(3, x), _kernel(2, x))
    else:
      strides = 1 if self.stem == 'cifar' else 2
      x = conv(self.width, _kernel(3, x), strides, name='stem_conv')(x)
      x = nn.relu(norm(name='stem_bn')(x))
    for stage, num_blocks in enumerate(STAGE_SIZES[self.depth]):
      for index in range(num_blocks):
        strides = 2 if stage > 0 and index == 0 else 1
        x = block(self.width * 2**stage, strides, conv=conv, norm=norm,
                  drop_path=rates[count], deterministic=not train,
                  name=f'{block_class.__name__}_{count}')(x)
        count += 1
      x = tap(self, f'stage{stage}', x)
    return jnp.mean(x, axis=tuple(range(1, x.ndim - 1)))


def build(model_config, spec, *, dtype, conv_impl) -> ResNet:
  cfg = model_config.resnet
  return ResNet(depth=cfg.depth, width=cfg.width, stem=cfg.stem, conv_impl=conv_impl,
                dtype=dtype, remat=model_config.remat, drop_path=cfg.drop_path)
