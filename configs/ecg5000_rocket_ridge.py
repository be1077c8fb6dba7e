"""ROCKET as its paper fits it: the random-kernel features of configs/ecg5000_rocket.py
with a ridge classifier solved in closed form (medjax/train/ridge.py) instead of a
logistic-regression head trained by Adam; the regularisation strength is the one of
ten (10^-3 ... 10^3, the paper's grid) whose head has the lowest validation loss.
The closed form draws nothing at random, so the kernels are drawn from the run's
seed (`--config.seed=S` is another draw of kernels, as the paper's resamples are).

COMMAND: python -m medjax.experiment --config=configs/ecg5000_rocket_ridge.py --workdir=workdirs/ecg5000_rocket_ridge
"""
from configs import ecg5000_rocket


def get_config():
  config = ecg5000_rocket.get_config()
  config.train.solver = 'ridge'
  config.model.rocket.kernel_seed = config.get_ref('seed')
  return config
