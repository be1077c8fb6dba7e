"""A Transformer over 16-sample patches of MIT-BIH beats, with their RR features (see
configs/mitdb_resnet1d.py).

COMMAND: python -m medjax.experiment --config=configs/mitdb_transformer.py --workdir=workdirs/mitdb_transformer
"""
from configs import common
from configs.mitdb_resnet1d import use_mitdb


def get_config():
  config = use_mitdb(common.get_config())
  config.model.name = 'signal_transformer'
  config.model.signal_transformer.update(patch_size=16, width=64, depth=3, num_heads=4,
                                         mlp_dim=128, dropout=0.1)
  config.train.steps = 2000
  config.optim.name = 'adamw'
  config.optim.learning_rate = 5e-4
  config.optim.weight_decay = 0.05
  config.optim.warmup_steps = 200
  return config
