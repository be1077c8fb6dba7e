"""The time-series ResNet of Wang et al. (2017) on ECG5000 (UCR).

COMMAND: python -m medjax.experiment --config=configs/ecg5000_resnet1d.py --workdir=workdirs/ecg5000_resnet1d
"""
from configs import common
from configs.ecg5000_inception import use_ecg5000


def get_config():
  config = use_ecg5000(common.get_config())
  config.model.name = 'resnet1d'
  config.optim.learning_rate = 1e-3
  config.optim.warmup_steps = 50
  return config
