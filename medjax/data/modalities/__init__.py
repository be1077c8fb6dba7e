"""Per-modality preprocessing: stored example arrays -> model inputs, and augmentation.

Each modality module has:
  CONFIG                    config fragment: dotted field -> default (its augmentation fields);
  POSITIONAL                (optional) whether the axes between batch and channels are
                            positions (pixels, voxels, time steps: CutMix cuts boxes of them);
  STANDARDISED              whether the registry computes per-channel training statistics;
  prepare(values, spec, augment_config, params) -> float32 model inputs, augmented
                            with `params` (from `draw`) when they are given;
  augmenting(augment_config) -> bool;
  draw(rng, count, augment_config, spec) -> dict of per-example random parameters;
and optionally AUGMENT_BOUNDS, {field: (lowest, bound above or None)}: the values of its
augmentation fields that mean something (checked with the config, before any data is
read), and check_augment(augment_config, spec): augmentation this input cannot take ->
ConfigError (called when the experiment is built).
"""
from medjax.config import ConfigError
from medjax.data.modalities import image, signal, tabular

MODALITIES = {'image': image, 'signal': signal, 'tabular': tabular}


def check_config(augment_config) -> None:
  """ConfigError for an augmentation field outside its modality's AUGMENT_BOUNDS."""
  for modality in MODALITIES.values():
    for field, (low, high) in getattr(modality, 'AUGMENT_BOUNDS', {}).items():
      value = augment_config[field]
      if value < low or (high is not None and value >= high):
        wanted = f'in [{low:g}, {high:g})' if high is not None else f'>= {low:g}'
        raise ConfigError(f'data.augment.{field}={value!r} must be {wanted}')
