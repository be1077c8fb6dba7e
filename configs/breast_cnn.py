"""The seed CNN on BreastMNIST (28 px): benign/normal vs malignant ultrasound.

COMMAND: python -m medjax.experiment --config=configs/breast_cnn.py --workdir=workdirs/breast_cnn
"""
from configs import common


def get_config():
  config = common.use_breastmnist(common.get_config())
  config.model.name = 'cnn'
  config.train.steps = 600
  config.train.batch_size = 64
  config.train.eval_every = 50
  config.train.checkpoint_every = 100
  config.optim.learning_rate = 1e-3
  config.optim.warmup_steps = 30
  return config
