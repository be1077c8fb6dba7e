"""ROCKET (random convolutional kernels and a linear classifier) on ECG5000 (UCR): the
classic time-series baseline beside the deep signal encoders.

COMMAND: python -m medjax.experiment --config=configs/ecg5000_rocket.py --workdir=workdirs/ecg5000_rocket
"""
from configs import common
from configs.ecg5000_inception import use_ecg5000


def get_config():
  config = use_ecg5000(common.get_config())
  config.model.name = 'rocket'
  # 20,000 standardised features: at the deep models' 1e-3 the validation loss rose from
  # the first validation on (0.82 at step 50); 1e-4 gave 0.374 (step 50), 2e-5 0.377
  # (step 450), seed 0, chosen on that validation loss.
  config.optim.learning_rate = 1e-4
  config.optim.warmup_steps = 50
  return config
