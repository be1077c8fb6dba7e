"""The time-series ResNet on MIT-BIH beats (MLII and V1, 256 samples around the R
peak) with their RR-interval features (an MLP beside it), AAMI classes, de Chazal's
inter-patient split: trained on DS1, checkpoints chosen by the jκ index on held-out
DS1 records, tested on DS2. The ECG study's validation-chosen recipe is shorter
(`mitdb/resnet1d_short` in experiments/ecg.py: validation jκ peaked at the first
validation, step 250, so 500 steps validated every 25); add
`--config.train.steps=500 --config.train.eval_every=25 --config.train.checkpoint_every=250`.

COMMAND: python -m medjax.experiment --config=configs/mitdb_resnet1d.py --workdir=workdirs/mitdb_resnet1d
"""
from configs import common


def use_mitdb(config):
  """MIT-BIH AAMI beats, class-balanced loss, signal augmentation."""
  config.data.name = 'mitdb/aami'
  config.data.augment.update(amplitude_scale=0.2, noise_std=0.05, time_shift=0.02,
                             baseline_wander=0.2)
  config.data.eval_batch_size = 1024
  config.train.class_weights = 'balanced'
  config.train.batch_size = 128
  config.train.eval_every = 250
  config.train.checkpoint_every = 500
  config.train.log_every = 100
  config.explain.num_images = 6
  config.eval.bootstrap_resamples = 500
  return config


def get_config():
  config = use_mitdb(common.get_config())
  config.model.name = 'resnet1d'
  config.model.resnet1d.width = 32
  config.train.steps = 2000
  config.optim.learning_rate = 1e-3
  config.optim.warmup_steps = 100
  return config
