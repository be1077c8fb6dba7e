"""A small Vision Transformer on BreastMNIST (28 px; a convolutional stem down to 7x7:
49 tokens + class token).

COMMAND: python -m medjax.experiment --config=configs/breast_vit.py --workdir=workdirs/breast_vit
"""
from configs import common


def get_config():
  config = common.use_breastmnist(common.get_config())
  config.model.name = 'vit'
  config.model.vit.patch_size = 4
  config.model.vit.stem = 'conv'
  config.model.vit.width = 128
  config.model.vit.depth = 4
  config.model.vit.num_heads = 4
  config.model.vit.mlp_dim = 256
  config.model.vit.dropout = 0.1
  config.train.steps = 1500
  config.train.label_smoothing = 0.1
  config.train.batch_size = 64
  config.train.eval_every = 50
  config.train.checkpoint_every = 100
  config.optim.name = 'adamw'
  config.optim.learning_rate = 5e-4
  config.optim.weight_decay = 0.05
  config.optim.warmup_steps = 50
  return config
