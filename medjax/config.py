"""Config validation against the schema of `configs/common.py`.

Every experiment config starts from the common defaults, so a field that is not
in them is a typo or a stale name, and a value whose type differs from the
default's is a mistake: both are refused with one line naming the field.
"""
import json

import ml_collections

from configs import common


class ConfigError(ValueError):
  """A config field is unknown, or has a value of the wrong type or a bad value."""


def flatten(config, prefix=''):
  items = {}
  for key, value in config.items():
    name = f'{prefix}{key}'
    if isinstance(value, (ml_collections.ConfigDict, dict)):
      items.update(flatten(value, f'{name}.'))
    else:
      items[name] = value
  return items


def _type_ok(value, default) -> bool:
  if isinstance(default, bool) or isinstance(value, bool):
    return isinstance(value, bool) and isinstance(default, bool)
  if isinstance(default, float):
    return isinstance(value, (int, float))
  if isinstance(default, (tuple, list)):
    return isinstance(value, (tuple, list))
  return isinstance(value, type(default))


def check_override_names(argv) -> None:
  """Refuses `--config.a.b=...` flags naming a field the schema lacks."""
  schema = flatten(common.get_config())
  for arg in argv:
    if arg.startswith('--config.'):
      name = arg[len('--config.'):].split('=', 1)[0]
      if name not in schema:
        raise ConfigError(f'unknown config field {name!r}')


def validate(config) -> None:
  """Unknown fields, wrong types and bad values (of the core and of the data family
  and model the config names) -> ConfigError, before any data set is prepared."""
  schema = flatten(common.get_config())
  for name, value in sorted(flatten(config).items()):
    if name not in schema:
      raise ConfigError(f'unknown config field {name!r}')
    default = schema[name]
    if not _type_ok(value, default):
      raise ConfigError(f'config field {name!r} must be {type(default).__name__}, '
                        f'got {type(value).__name__} {value!r}')
  if config.train.steps < 1 or config.train.batch_size < 1:
    raise ConfigError('train.steps and train.batch_size must be positive')
  if config.data.prefetch_batches < 1:
    raise ConfigError('data.prefetch_batches must be at least 1')
  if config.data.in_memory_mib < 0:
    raise ConfigError('data.in_memory_mib must be >= 0 (0 reads every batch from disk)')
  if config.data.eval_batch_size < 1:
    raise ConfigError('data.eval_batch_size must be positive')
  if config.mesh.data == 0 or config.mesh.data < -1 or config.mesh.fsdp < 1:
    raise ConfigError(f'mesh.data={config.mesh.data} must be -1 (all devices) or positive, '
                      f'and mesh.fsdp={config.mesh.fsdp} positive')
  if not 0.0 <= config.train.ema_decay < 1.0:
    raise ConfigError(f'train.ema_decay={config.train.ema_decay} must be in [0, 1)')
  for field in ('mixup_alpha', 'cutmix_alpha'):
    if config.train[field] < 0:
      raise ConfigError(f'train.{field}={config.train[field]} must be >= 0 (0: off)')
  from medjax import data, models, tta  # the registries (imports JAX)
  from medjax.train import solvers
  solvers.check_config(config.train)
  tta.check_config(config.eval.tta)
  data.check_config(config.data)
  models.check_config(config.model)


def to_json(config) -> str:
  return json.dumps(config.to_dict(), indent=2, sort_keys=True) + '\n'


def from_json(text: str) -> ml_collections.ConfigDict:
  """The inverse of `to_json`, starting from the defaults so types survive (tuples)."""
  config = common.get_config()
  config.update_from_flattened_dict(flatten(json.loads(text)))
  return config
