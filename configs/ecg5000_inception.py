"""InceptionTime on ECG5000 (UCR): five classes of heartbeats from one patient with
severe congestive heart failure; 500 TRAIN series (a stratified 20% for validation),
4500 TEST.

COMMAND: python -m medjax.experiment --config=configs/ecg5000_inception.py --workdir=workdirs/ecg5000_inception
"""
from configs import common


def use_ecg5000(config):
  """ECG5000 with the recipe of every ECG5000 model: signal augmentation, 500 steps
  (validation accuracy and loss stopped improving after step 100 in a 1500-step
  InceptionTime run), validation every 50 steps, the checkpoint of lowest validation
  loss: accuracy on the 100 validation series moves in steps of 0.01 and ties often."""
  config.data.name = 'ucr/ECG5000'
  config.data.augment.update(amplitude_scale=0.1, noise_std=0.05, time_shift=0.03,
                             baseline_wander=0.1)
  config.data.eval_batch_size = 500
  config.train.batch_size = 64
  config.train.steps = 500
  config.train.eval_every = 50
  config.train.checkpoint_every = 250
  config.train.log_every = 50
  config.train.select_metric = 'loss'
  config.explain.num_images = 4
  return config


def get_config():
  config = use_ecg5000(common.get_config())
  config.model.name = 'inception_time'
  config.optim.learning_rate = 1e-3
  config.optim.warmup_steps = 50
  return config
