"""Image augmentation in numpy, a whole batch at a time, driven by `config.data.augment`.

`draw` takes every random number of a batch from one `np.random.Generator`
(the pipeline seeds it with the run's seed and the global batch's number), so the
same seed gives the same augmented images on every run and every host; `apply`
then transforms the batch with vectorised numpy: one gather for all the affine
resamplings instead of a Python call per image (see benchmarks/README.md).
"""
import numpy as np

from medjax.config import ConfigError


def is_identity(cfg) -> bool:
  return not (cfg.rotation_degrees or cfg.zoom or cfg.translate or cfg.horizontal_flip
              or cfg.vertical_flip or cfg.depth_flip or cfg.brightness or cfg.contrast)


def check_volume_config(cfg) -> None:
  """Rotation and zoom resample 2-D images only; a volume takes flips, shifts and intensity."""
  for field in ('rotation_degrees', 'zoom'):
    if cfg[field]:
      raise ConfigError(f'data.augment.{field}={cfg[field]}: volumes (D, H, W, C) are '
                        'augmented by flips, translate, brightness and contrast only')


def draw(rng: np.random.Generator, count: int, cfg, dims: int = 2) -> dict[str, np.ndarray]:
  """The random parameters of `count` examples of `dims` spatial axes, one row each
  (slice rows to share one draw between the processes that hold parts of a batch)."""
  params = {
      'angle': np.deg2rad(rng.uniform(-cfg.rotation_degrees, cfg.rotation_degrees, count)),
      'scale': rng.uniform(1.0 - cfg.zoom, 1.0 + cfg.zoom, count),
      'shift': rng.uniform(-cfg.translate, cfg.translate, (count, dims)),  # fraction of each axis
      'horizontal_flip': rng.random(count) < (0.5 if cfg.horizontal_flip else 0.0),
      'vertical_flip': rng.random(count) < (0.5 if cfg.vertical_flip else 0.0),
      'contrast': rng.uniform(1.0 - cfg.contrast, 1.0 + cfg.contrast, count),
      'brightness': rng.uniform(-cfg.brightness, cfg.brightness, count),
  }
  if dims == 3:
    params['depth_flip'] = rng.random(count) < (0.5 if cfg.depth_flip else 0.0)
  return params


def affine_resample(images: np.ndarray, matrices: np.ndarray,
                    offsets: np.ndarray) -> np.ndarray:
  """Bilinear resampling of images (N, H, W, C): output pixel o of image n samples
  the input at  matrices[n] @ o + offsets[n]  (row, column), edges extended; the
  same as `scipy.ndimage.affine_transform(order=1, mode='nearest')` per image."""
  count, height, width = images.shape[:3]
  grid = np.stack(np.meshgrid(np.arange(height), np.arange(width), indexing='ij'))
  coords = np.einsum('nij,jhw->nihw', matrices, grid) + offsets[:, :, None, None]
  rows = np.clip(coords[:, 0], 0, height - 1)
  cols = np.clip(coords[:, 1], 0, width - 1)
  row0, col0 = np.floor(rows).astype(np.intp), np.floor(cols).astype(np.intp)
  row1, col1 = np.minimum(row0 + 1, height - 1), np.minimum(col0 + 1, width - 1)
  row_weight = (rows - row0)[..., None].astype(images.dtype)
  col_weight = (cols - col0)[..., None].astype(images.dtype)
  n = np.arange(count)[:, None, None]
  top = images[n, row0, col0] * (1 - col_weight) + images[n, row0, col1] * col_weight
  bottom = images[n, row1, col0] * (1 - col_weight) + images[n, row1, col1] * col_weight
  return top * (1 - row_weight) + bottom * row_weight


def shift_volumes(volumes: np.ndarray, shifts: np.ndarray) -> np.ndarray:
  """Volumes (N, D, H, W, C) moved by whole voxels `shifts` (N, 3), edges extended."""
  count = len(volumes)
  index = [np.arange(count).reshape(-1, 1, 1, 1)]
  for axis in range(3):
    size = volumes.shape[1 + axis]
    positions = np.clip(np.arange(size)[None] - shifts[:, axis:axis + 1], 0, size - 1)
    index.append(positions.reshape((count,) + tuple(size if a == axis else 1 for a in range(3))))
  return volumes[tuple(index)]


def apply(images: np.ndarray, params: dict[str, np.ndarray], cfg) -> np.ndarray:
  """Random rotation, zoom and shift (one affine resampling about the centre; for
  volumes (N, D, H, W, C) a shift by whole voxels), flips, contrast and brightness for
  float images (N, H, W, C) or volumes in [0, 1]."""
  spatial = images.shape[1:-1]
  per_example = (slice(None),) + (None,) * (images.ndim - 1)
  if len(spatial) == 3:
    if cfg.translate:
      images = shift_volumes(images, np.round(params['shift'] * spatial).astype(np.intp))
    images = np.where(params['depth_flip'][per_example], images[:, ::-1], images)
  elif cfg.rotation_degrees or cfg.zoom or cfg.translate:
    height, width = spatial
    # Output pixel o samples the input at  matrix @ (o - centre) + centre - shift.
    cos, sin = np.cos(params['angle']) / params['scale'], np.sin(params['angle']) / params['scale']
    matrices = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
    centre = (np.array([height, width]) - 1) / 2.0
    offsets = centre - matrices @ centre - params['shift'] * (height, width)
    images = affine_resample(images, matrices, offsets)
  # Horizontal: along the width (the last spatial axis); vertical: along the height.
  images = np.where(params['horizontal_flip'][per_example], np.flip(images, -2), images)
  images = np.where(params['vertical_flip'][per_example], np.flip(images, -3), images)
  if cfg.contrast:
    means = images.mean(axis=tuple(range(1, images.ndim)), keepdims=True)
    images = (images - means) * params['contrast'][per_example] + means
  if cfg.brightness:
    images = images + params['brightness'][per_example]
  return np.clip(images, 0.0, 1.0).astype(np.float32)
