"""`train.solver`: which trainer fits the model, checked with the rest of the config.

Kept apart from the trainers so that config validation, which runs before anything
else, does not load what training needs (a config mistake is reported in the time it
takes to import the registries).
"""
from medjax.config import ConfigError

# The gradient loop (medjax/train/loop.py) or the head in closed form (medjax/train/ridge.py).
SOLVERS = ('gradient', 'ridge')
# Training settings the ridge closed form has no counterpart for: refused, not ignored.
GRADIENT_ONLY = {'ema': False, 'mixup_alpha': 0.0, 'cutmix_alpha': 0.0,
                 'label_smoothing': 0.0}


def check_config(train_config) -> None:
  """ConfigError for a `train.solver` value, or ridge settings, that cannot be honoured
  (checked with the rest of the config, before any data is read)."""
  if train_config.solver not in SOLVERS:
    raise ConfigError(f'train.solver={train_config.solver!r} is not one of {SOLVERS}')
  if train_config.solver != 'ridge':
    return
  if not train_config.ridge_alphas or min(train_config.ridge_alphas) <= 0:
    raise ConfigError(f'train.ridge_alphas={tuple(train_config.ridge_alphas)} must be '
                      'positive regularisation strengths (at least one)')
  for field, off in GRADIENT_ONLY.items():
    if train_config[field] != off:
      raise ConfigError(f"train.{field}={train_config[field]!r} needs train.solver='gradient' "
                        f"(the ridge solver fits with train.{field}={off!r})")
