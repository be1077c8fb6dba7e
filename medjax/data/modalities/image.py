"""Images (H, W, C) and volumes (D, H, W, C): uint8 pixels -> [-1, 1]; batched affine
(images) or shift (volumes), flip and intensity augmentation."""
import numpy as np

from medjax import tta
from medjax.data.modalities import image_augment

CONFIG = {
    'data.augment.rotation_degrees': 0.0,  # uniform in [-r, r]
    'data.augment.zoom': 0.0,              # scale uniform in [1 - z, 1 + z]
    'data.augment.translate': 0.0,         # shift uniform in [-t, t] * size
    'data.augment.horizontal_flip': False,
    'data.augment.vertical_flip': False,
    'data.augment.depth_flip': False,      # volumes: along the first spatial axis
    'data.augment.brightness': 0.0,        # additive, uniform in [-b, b] (pixels in [0, 1])
    'data.augment.contrast': 0.0,          # factor uniform in [1 - c, 1 + c]
}
AUGMENT_BOUNDS = {'rotation_degrees': (0.0, None), 'zoom': (0.0, 1.0),
                  'translate': (0.0, 1.0), 'brightness': (0.0, None), 'contrast': (0.0, 1.0)}
POSITIONAL = True  # the axes between batch and channels are positions (CutMix boxes)
STANDARDISED = False
BLACK = -1.0  # a black pixel after normalisation: the integrated-gradients baseline
SHIFT_PIXELS = 2
# Test-time views of a (batch, [D,] H, W, C) array of model inputs (medjax/tta.py):
# flips and shifts along the height (axis -3) and width (axis -2).
TTA_VIEWS = {
    'hflip': [lambda x: np.flip(x, -2)],
    'vflip': [lambda x: np.flip(x, -3)],
    'shift': [lambda x, axis=axis, amount=amount: tta.shifted(x, axis, amount, BLACK)
              for axis in (-3, -2) for amount in (-SHIFT_PIXELS, SHIFT_PIXELS)],
}


def normalise(image: np.ndarray) -> np.ndarray:
  """uint8 pixels (or floats in [0, 1] after augmentation) -> model inputs in [-1, 1]."""
  if image.dtype == np.uint8:
    image = image.astype(np.float32) / 255.0
  return (image.astype(np.float32) - 0.5) / 0.5


def augmenting(augment_config) -> bool:
  return not image_augment.is_identity(augment_config)


def check_augment(augment_config, spec) -> None:
  if len(spec.shape) == 4:
    image_augment.check_volume_config(augment_config)


def draw(rng, count, augment_config, spec):
  return image_augment.draw(rng, count, augment_config, len(spec.shape) - 1)


def prepare(values, spec, augment_config=None, params=None) -> np.ndarray:
  if params is not None:
    values = image_augment.apply(values.astype(np.float32) / 255.0, params, augment_config)
  return normalise(values)
