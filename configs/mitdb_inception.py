"""InceptionTime on MIT-BIH beats with their RR features (see configs/mitdb_resnet1d.py).

COMMAND: python -m medjax.experiment --config=configs/mitdb_inception.py --workdir=workdirs/mitdb_inception
"""
from configs import common
from configs.mitdb_resnet1d import use_mitdb


def get_config():
  config = use_mitdb(common.get_config())
  config.model.name = 'inception_time'
  config.model.inception_time.update(depth=6, filters=16, bottleneck=16, kernel_size=40)
  # 1000 steps, validated every 100: the ResNet's validation jκ peaked at its first
  # validation (step 250 of 2000) and fell after it, and this model costs twice as much.
  config.train.steps = 1000
  config.train.eval_every = 100
  config.optim.learning_rate = 1e-3
  config.optim.warmup_steps = 100
  return config
