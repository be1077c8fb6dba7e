"""Reading new image files (PNG, JPEG, DICOM) into the training pixel format.

Training images are uint8 arrays of the task's (H, W, C); a new file is read,
turned into 8-bit pixels the way a radiologist's viewer would show it, converted
to the task's channels and resized to its size. DICOM: rescale slope and
intercept (modality LUT), the file's window (VOI LUT) or else its full range,
and MONOCHROME1 inverted so that higher values are brighter.
"""
import pathlib

import numpy as np
import PIL.Image
import pydicom
from pydicom.pixels import apply_modality_lut, apply_voi_lut

SUFFIXES = ('.png', '.jpg', '.jpeg', '.dcm', '.dicom')


class ImageReadError(ValueError):
  """A file that cannot be read as a 2-D image."""


def _is_dicom(path: pathlib.Path) -> bool:
  if path.suffix.lower() in ('.dcm', '.dicom'):
    return True
  with open(path, 'rb') as handle:
    return handle.read(132)[128:] == b'DICM'


def read_dicom(path) -> np.ndarray:
  """A single-frame DICOM image as uint8 (H, W) or (H, W, 3)."""
  dataset = pydicom.dcmread(path)
  pixels = dataset.pixel_array
  frames = int(getattr(dataset, 'NumberOfFrames', 1) or 1)
  if frames > 1:
    raise ImageReadError(f'{frames} frames; only single-frame 2-D images are supported')
  if getattr(dataset, 'SamplesPerPixel', 1) == 3:
    return np.asarray(pixels, np.uint8) if pixels.dtype == np.uint8 else _to_uint8(pixels)
  values = apply_modality_lut(pixels, dataset).astype(np.float64)
  if 'WindowCenter' in dataset and 'WindowWidth' in dataset:
    values = apply_voi_lut(values, dataset).astype(np.float64)
  image = _to_uint8(values)
  if dataset.PhotometricInterpretation == 'MONOCHROME1':
    image = 255 - image
  return image


def _to_uint8(values) -> np.ndarray:
  values = np.asarray(values, np.float64)
  low, high = float(values.min()), float(values.max())
  if high <= low:
    return np.zeros(values.shape, np.uint8)
  return np.round((values - low) / (high - low) * 255).astype(np.uint8)


def read_image(path) -> np.ndarray:
  """Any supported file as uint8 (H, W) or (H, W, 3); ImageReadError otherwise."""
  path = pathlib.Path(path)
  try:
    if _is_dicom(path):
      return read_dicom(path)
    with PIL.Image.open(path) as image:
      image.load()
      if image.mode not in ('L', 'RGB'):
        image = image.convert('RGB' if image.mode in ('RGBA', 'P', 'CMYK', 'YCbCr') else 'L')
      return np.asarray(image)
  except ImageReadError:
    raise
  except Exception as error:  # pylint: disable=broad-except  (any decoder failure)
    raise ImageReadError(f'cannot read as an image ({type(error).__name__}: {error})') from None


def to_task_pixels(image: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
  """uint8 image -> uint8 (H, W, C) of the task: channels converted, bilinear resize."""
  height, width, channels = shape
  if image.ndim != 2 and not (image.ndim == 3 and image.shape[-1] in (1, 3)):
    raise ImageReadError(f'pixel array of shape {image.shape} is not a 2-D grey or RGB image')
  pil = PIL.Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image)
  pil = pil.convert('L' if channels == 1 else 'RGB').resize((width, height),
                                                            PIL.Image.BILINEAR)
  return np.asarray(pil, np.uint8).reshape(height, width, channels)
