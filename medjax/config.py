"""Config validation against the schema of `configs/common.py`.

Every experiment config starts from the common defaults, so a field that is not
in them is a typo or a stale name, and a value whose type differs from the
default's is a mistake: both are refused with one line naming the field.
"""
import json
import math

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


def _numbers(value) -> list[float]:
  """The floats of a field's value (a number, or a tuple of them)."""
  values = value if isinstance(value, (tuple, list)) else [value]
  return [v for v in values if isinstance(v, float)]


def _at_least(low):
  return lambda value: value >= low


def _in(low, high, high_included=False):
  return lambda value: low <= value and (value <= high if high_included else value < high)


# The core fields' bounds (the families' and encoders' fields are checked by their modules).
CORE_RANGES = {
    'train.steps': (_at_least(1), 'positive'),
    'train.batch_size': (_at_least(1), 'positive'),
    'train.microbatches': (_at_least(1), 'positive'),
    'train.log_every': (_at_least(1), 'positive'),
    'train.eval_every': (_at_least(1), 'positive'),
    'train.checkpoint_every': (_at_least(1), 'positive'),
    'train.checkpoints_to_keep': (_at_least(1), 'positive'),
    'train.label_smoothing': (_in(0.0, 1.0), 'in [0, 1)'),
    'train.ema_decay': (_in(0.0, 1.0), 'in [0, 1)'),
    'train.mixup_alpha': (_at_least(0.0), '>= 0 (0: off)'),
    'train.cutmix_alpha': (_at_least(0.0), '>= 0 (0: off)'),
    'optim.learning_rate': (lambda value: value > 0, 'positive'),
    'optim.warmup_steps': (_at_least(0), '>= 0'),
    'optim.weight_decay': (_at_least(0.0), '>= 0'),
    'optim.momentum': (_in(0.0, 1.0), 'in [0, 1)'),
    'optim.grad_clip_norm': (_at_least(0.0), '>= 0 (0: no clipping)'),
    'optim.schedule_steps': (_at_least(0), '>= 0 (0: train.steps)'),
    'data.eval_batch_size': (_at_least(1), 'positive'),
    'data.prefetch_batches': (_at_least(1), 'at least 1'),
    'data.in_memory_mib': (_at_least(0.0), '>= 0 (0 reads every batch from disk)'),
    'data.cv_folds': (lambda value: value == 0 or value >= 2, '0 (off) or at least 2'),
    'data.cv_fold': (_at_least(0), '>= 0'),
    'eval.operating_target': (_in(0.0, 1.0, high_included=True), 'in [0, 1]'),
    'eval.bootstrap_resamples': (_at_least(1), 'positive'),
    'eval.confidence': (lambda value: 0.0 < value < 1.0, 'in (0, 1)'),
    'eval.temperature': (_at_least(0.0), '>= 0 (0: fitted on validation)'),
    'eval.operating_threshold': (_in(0.0, 1.0), 'in [0, 1) (0: chosen on validation)'),
    'explain.num_images': (_at_least(0), '>= 0 (0: none)'),
    'explain.smoothgrad_samples': (_at_least(1), 'positive'),
    'explain.smoothgrad_noise': (_at_least(0.0), '>= 0'),
    'explain.ig_steps': (_at_least(1), 'positive'),
    'mesh.fsdp': (_at_least(1), 'positive'),
    'mesh.fsdp_min_size': (_at_least(0), '>= 0'),
}


def validate(config) -> None:
  """Unknown fields, wrong types and bad values (of the core and of the data family
  and model the config names) -> ConfigError, before any data set is prepared."""
  schema, fields = flatten(common.get_config()), flatten(config)
  for name, value in sorted(fields.items()):
    if name not in schema:
      raise ConfigError(f'unknown config field {name!r}')
    default = schema[name]
    if not _type_ok(value, default):
      raise ConfigError(f'config field {name!r} must be {type(default).__name__}, '
                        f'got {type(value).__name__} {value!r}')
    if not all(math.isfinite(v) for v in _numbers(value)):
      raise ConfigError(f'config field {name!r} must be a finite number, got {value!r}')
  for name, (test, wanted) in CORE_RANGES.items():
    if not test(fields[name]):
      raise ConfigError(f'{name}={fields[name]!r} must be {wanted}')
  if config.mesh.data == 0 or config.mesh.data < -1:
    raise ConfigError(f'mesh.data={config.mesh.data} must be -1 (all devices) or positive')
  if 0 < config.optim.schedule_steps < config.train.steps:
    raise ConfigError(f'optim.schedule_steps={config.optim.schedule_steps} is shorter than '
                      f'train.steps={config.train.steps}: the steps after it would not learn')
  from medjax import clinical, data, explain, models, tta  # the registries (imports JAX)
  from medjax.train import solvers, state, step
  choices = {'optim.name': state.OPTIMIZERS, 'optim.schedule': state.SCHEDULES,
             'train.nonfinite': step.NONFINITE_MODES, 'train.class_weights': step.CLASS_WEIGHTS,
             'eval.operating_rule': clinical.OPERATING_RULES}
  for name, allowed in choices.items():
    if fields[name] not in allowed:
      raise ConfigError(f'{name}={fields[name]!r} is not one of {allowed}')
  explain.configured_methods(config.explain.methods)
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
