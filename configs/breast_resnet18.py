"""ResNet-18 on BreastMNIST (28 px): benign/normal vs malignant ultrasound.

COMMAND: python -m medjax.experiment --config=configs/breast_resnet18.py --workdir=workdirs/breast_resnet18
"""
from configs import common


def get_config():
  config = common.use_breastmnist(common.get_config())
  config.model.name = 'resnet'
  config.model.resnet.depth = 18
  config.model.resnet.stem = 'stride2'
  config.train.steps = 800
  config.train.batch_size = 64
  config.train.eval_every = 25
  config.train.checkpoint_every = 100
  config.optim.learning_rate = 1e-3
  config.optim.warmup_steps = 25
  return config
