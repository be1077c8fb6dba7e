"""Model registry: `build(config.model, task)` returns a Linen module.

Every model maps a batch dict to float32 logits of shape (batch, task.num_classes)
and takes `train=` to switch dropout and BatchNorm statistics.
"""
import jax.numpy as jnp

from medjax.data.task import Task
from medjax.models.cnn import SeedCNN
from medjax.models.conv import CONV_IMPLS
from medjax.models.resnet import STAGE_SIZES, STEMS, ResNet
from medjax.models.vit import ViT

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def _cnn(model_config, task, dtype):
  return SeedCNN(num_outputs=task.num_classes, dropout=model_config.cnn.dropout,
                 conv_impl=model_config.conv_impl, dtype=dtype)


def _resnet(model_config, task, dtype):
  cfg = model_config.resnet
  if cfg.depth not in STAGE_SIZES:
    raise ValueError(f'model.resnet.depth={cfg.depth} is not one of {sorted(STAGE_SIZES)}')
  if cfg.stem not in STEMS:
    raise ValueError(f'model.resnet.stem={cfg.stem!r} is not one of {STEMS}')
  return ResNet(num_outputs=task.num_classes, depth=cfg.depth, width=cfg.width,
                stem=cfg.stem, conv_impl=model_config.conv_impl, dtype=dtype,
                remat=model_config.remat)


def _vit(model_config, task, dtype):
  cfg = model_config.vit
  height, width = task.inputs['image'].shape[:2]
  if height % cfg.patch_size or width % cfg.patch_size:
    raise ValueError(f'model.vit.patch_size={cfg.patch_size} does not divide the '
                     f'{height}x{width} images of {task.name}')
  if cfg.stem not in ('patch', 'conv'):
    raise ValueError(f"model.vit.stem={cfg.stem!r} is not one of ('patch', 'conv')")
  if cfg.stem == 'conv' and cfg.patch_size & (cfg.patch_size - 1):
    raise ValueError(f'model.vit.stem=conv needs a power-of-two patch_size, got {cfg.patch_size}')
  if cfg.width % cfg.num_heads:
    raise ValueError(f'model.vit.width={cfg.width} is not divisible by '
                     f'model.vit.num_heads={cfg.num_heads}')
  return ViT(num_outputs=task.num_classes, patch_size=cfg.patch_size, width=cfg.width,
             depth=cfg.depth, num_heads=cfg.num_heads, mlp_dim=cfg.mlp_dim,
             dropout=cfg.dropout, stem=cfg.stem, dtype=dtype, remat=model_config.remat)


MODELS = {'cnn': _cnn, 'resnet': _resnet, 'vit': _vit}


def build(model_config, task: Task):
  if model_config.name not in MODELS:
    raise ValueError(f'model.name={model_config.name!r} is not one of {sorted(MODELS)}')
  if model_config.dtype not in DTYPES:
    raise ValueError(f'model.dtype={model_config.dtype!r} is not one of {sorted(DTYPES)}')
  if model_config.conv_impl not in CONV_IMPLS:
    raise ValueError(f'model.conv_impl={model_config.conv_impl!r} is not one of '
                     f'{sorted(CONV_IMPLS)}')
  if 'image' not in task.inputs:
    raise ValueError(f'model {model_config.name!r} reads images, but {task.name} has '
                     f'inputs {sorted(task.inputs)}')
  return MODELS[model_config.name](model_config, task, DTYPES[model_config.dtype])
