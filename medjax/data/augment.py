"""Per-example image augmentation in numpy, driven by `config.data.augment`.

Each example gets its own `np.random.Generator` from grain (seeded by the
pipeline seed and the example's position in the stream), so the same seed
gives the same augmented images on every run and every host.
"""
import numpy as np
from scipy import ndimage


def is_identity(cfg) -> bool:
  return not (cfg.rotation_degrees or cfg.zoom or cfg.translate or cfg.horizontal_flip
              or cfg.vertical_flip or cfg.brightness or cfg.contrast)


def augment_image(image: np.ndarray, rng: np.random.Generator, cfg) -> np.ndarray:
  """Random rotation, zoom and shift (one affine resampling), flips, brightness
  and contrast for one float image of shape (H, W, C) with values in [0, 1]."""
  height, width = image.shape[:2]
  angle = np.deg2rad(rng.uniform(-cfg.rotation_degrees, cfg.rotation_degrees))
  scale = rng.uniform(1.0 - cfg.zoom, 1.0 + cfg.zoom)
  shift = rng.uniform(-cfg.translate, cfg.translate, size=2) * (height, width)
  if angle or scale != 1.0 or shift.any():
    # Output pixel o samples the input at  matrix @ (o - centre) + centre - shift.
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    matrix = np.array([[cos, -sin], [sin, cos]])
    centre = (np.array([height, width]) - 1) / 2.0
    offset = centre - matrix @ centre - shift
    image = np.stack([
        ndimage.affine_transform(image[..., c], matrix, offset, order=1, mode='nearest')
        for c in range(image.shape[-1])
    ], axis=-1)
  if cfg.horizontal_flip and rng.random() < 0.5:
    image = image[:, ::-1]
  if cfg.vertical_flip and rng.random() < 0.5:
    image = image[::-1]
  if cfg.contrast:
    image = (image - image.mean()) * rng.uniform(1 - cfg.contrast, 1 + cfg.contrast) + image.mean()
  if cfg.brightness:
    image = image + rng.uniform(-cfg.brightness, cfg.brightness)
  return np.clip(image, 0.0, 1.0).astype(np.float32)
