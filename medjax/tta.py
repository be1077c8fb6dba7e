"""Test-time augmentation (`eval.tta`): every evaluation (validation during training, eval,
ensembles) and prediction averages the logits of each example and of fixed transformed
views of it, so the result is deterministic. Views are named in a comma list; each
modality says which it has (`TTA_VIEWS` in medjax/data/modalities/): images `hflip`,
`vflip` and `shift` (4 views, 2 pixels up, down, left, right), signals `shift` (2 views,
2% of the length earlier and later). A view changes the inputs of the modalities that
have it and leaves the others (e.g. an ECG beat's RR features) as they are.
"""
from typing import Callable

import numpy as np

from medjax.config import ConfigError
from medjax.data.task import Task

View = Callable[[dict], dict]


def names(config_value: str) -> list[str]:
  return [name.strip() for name in config_value.split(',') if name.strip()]


def _modalities():
  from medjax.data.modalities import MODALITIES  # whose modules import shifted() from here
  return MODALITIES


def check_config(config_value: str) -> None:
  known = sorted({view for m in _modalities().values() for view in getattr(m, 'TTA_VIEWS', {})})
  unknown = sorted(set(names(config_value)) - set(known))
  if unknown:
    raise ConfigError(f'eval.tta: unknown views {unknown}; known: {known}')


def shifted(values: np.ndarray, axis: int, amount: int, fill: float) -> np.ndarray:
  """`values` moved by `amount` along `axis`, the gap filled with `fill`."""
  out = np.full_like(values, fill)
  source = [slice(None)] * values.ndim
  target = [slice(None)] * values.ndim
  source[axis] = slice(max(-amount, 0), values.shape[axis] - max(amount, 0))
  target[axis] = slice(max(amount, 0), values.shape[axis] - max(-amount, 0))
  out[tuple(target)] = values[tuple(source)]
  return out


def views(config_value: str, task: Task) -> list[View]:
  """The batch transforms to average over, the identity first."""
  modalities = _modalities()
  result: list[View] = [lambda batch: batch]
  for name in names(config_value):
    keyed = {key: modalities[spec.modality].TTA_VIEWS[name]
             for key, spec in task.inputs.items()
             if name in getattr(modalities[spec.modality], 'TTA_VIEWS', {})}
    if not keyed:
      raise ConfigError(f'eval.tta: no input of {task.name} has the view {name!r}')
    count = len(next(iter(keyed.values())))
    for index in range(count):
      result.append(lambda batch, keyed=keyed, index=index: {
          **batch, **{key: transforms[index](batch[key]) for key, transforms in keyed.items()}})
  return result
