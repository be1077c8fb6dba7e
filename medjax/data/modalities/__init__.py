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
and optionally check_augment(augment_config, spec): augmentation this input cannot take
-> ConfigError (called when the experiment is built).
"""
from medjax.data.modalities import image, signal, tabular

MODALITIES = {'image': image, 'signal': signal, 'tabular': tabular}
