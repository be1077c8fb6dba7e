"""A Transformer over 10-sample patches of the ECG5000 beats (UCR).

COMMAND: python -m medjax.experiment --config=configs/ecg5000_transformer.py --workdir=workdirs/ecg5000_transformer
"""
from configs import common
from configs.ecg5000_inception import use_ecg5000


def get_config():
  config = use_ecg5000(common.get_config())
  config.model.name = 'signal_transformer'
  config.model.signal_transformer.update(patch_size=10, width=64, depth=3, num_heads=4,
                                         mlp_dim=128, dropout=0.1)
  config.optim.name = 'adamw'
  config.optim.learning_rate = 1e-3
  config.optim.weight_decay = 0.05
  config.optim.warmup_steps = 100
  return config
