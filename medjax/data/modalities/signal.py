"""Physiological signals (length, channels): standardised per channel with the
training split's statistics (missing samples, NaN, become 0), and augmented a batch
at a time.

Augmentation (`data.augment.*`, in standardised units), every random number drawn
by `draw` from the batch's generator, so the same seed gives the same batches:
  * amplitude_scale s: each example scaled by a factor uniform in [1 - s, 1 + s];
  * noise_std: white Gaussian noise of that standard deviation;
  * time_shift t: shifted by a whole number of samples uniform in [-t, t] x length,
    the edge sample repeated into the gap;
  * baseline_wander b: a sinusoid of amplitude uniform in [0, b] and frequency uniform
    in [0.05, 0.5] Hz (0.1-1 cycles per window where the sampling rate is unknown), the
    slow drift of respiration and electrode movement.
"""
import numpy as np

from medjax import tta

CONFIG = {
    'data.augment.amplitude_scale': 0.0,
    'data.augment.noise_std': 0.0,
    'data.augment.time_shift': 0.0,
    'data.augment.baseline_wander': 0.0,
}
AUGMENT_BOUNDS = {'amplitude_scale': (0.0, 1.0), 'noise_std': (0.0, None),
                  'time_shift': (0.0, 1.0), 'baseline_wander': (0.0, None)}
POSITIONAL = True  # the axes between batch and channels are positions (CutMix boxes)
STANDARDISED = True
BLACK = 0.0  # the training mean: the integrated-gradients baseline
SHIFT_FRACTION = 0.02


def _shift_views():
  def view(sign):
    def shift(x):  # (batch, length, channels)
      amount = sign * max(1, round(SHIFT_FRACTION * x.shape[1]))
      return tta.shifted(x, 1, amount, BLACK)
    return shift
  return [view(-1), view(1)]


# Test-time views of a (batch, length, channels) array of model inputs (medjax/tta.py).
TTA_VIEWS = {'shift': _shift_views()}
WANDER_HZ = (0.05, 0.5)


def standardise(values: np.ndarray, spec) -> np.ndarray:
  values = np.asarray(values, np.float32)
  if spec.mean:
    values = (values - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
  return np.nan_to_num(values, nan=0.0)  # a missing lead: the training mean


def augmenting(cfg) -> bool:
  return bool(cfg.amplitude_scale or cfg.noise_std or cfg.time_shift or cfg.baseline_wander)


def draw(rng: np.random.Generator, count: int, cfg, spec) -> dict[str, np.ndarray]:
  length = spec.shape[0]
  max_shift = int(round(cfg.time_shift * length))
  if spec.sampling_rate:
    cycles = rng.uniform(*WANDER_HZ, count) * length / spec.sampling_rate
  else:
    cycles = rng.uniform(0.1, 1.0, count)
  return {
      'scale': rng.uniform(1.0 - cfg.amplitude_scale, 1.0 + cfg.amplitude_scale, count),
      'noise': (rng.standard_normal((count,) + tuple(spec.shape), np.float32) * cfg.noise_std
                if cfg.noise_std else np.zeros((count, 1, 1), np.float32)),
      'shift': rng.integers(-max_shift, max_shift + 1, count),
      'wander_amplitude': rng.uniform(0.0, cfg.baseline_wander, count),
      'wander_cycles': cycles,
      'wander_phase': rng.uniform(0.0, 2 * np.pi, count),
  }


def apply(signals: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
  """Scale, shift, wander and noise for standardised signals (N, length, channels)."""
  count, length = signals.shape[:2]
  positions = np.clip(np.arange(length)[None] - params['shift'][:, None], 0, length - 1)
  signals = signals[np.arange(count)[:, None], positions] * params['scale'][:, None, None]
  t = np.arange(length) / length
  wander = params['wander_amplitude'][:, None] * np.sin(
      2 * np.pi * params['wander_cycles'][:, None] * t + params['wander_phase'][:, None])
  return (signals + wander[..., None] + params['noise']).astype(np.float32)


def prepare(values, spec, augment_config=None, params=None) -> np.ndarray:
  values = standardise(values, spec)
  return apply(values, params) if params is not None else values
