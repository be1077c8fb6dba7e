"""Tabular features: standardised with the training split's mean and deviation.

Missing values (NaN) become 0 after standardisation, the training mean.
"""
import numpy as np

CONFIG = {}
STANDARDISED = True
BLACK = 0.0  # the training mean: the integrated-gradients baseline


def standardise(values: np.ndarray, spec) -> np.ndarray:
  values = np.asarray(values, np.float32)
  if spec.mean:
    values = (values - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
  return np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)


def augmenting(augment_config) -> bool:
  return False


def draw(rng, count, augment_config, spec):
  return {}


def prepare(values, spec, augment_config=None, params=None) -> np.ndarray:
  return standardise(values, spec)
