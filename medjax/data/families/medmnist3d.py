"""MedMNIST's six 3-D data sets (Yang et al. 2023) as a TFDS builder: CT, MRA and
electron-microscopy volumes of 28 or 64 voxels a side (`data.image_size`, the field the
2-D family defines), stored as `image` inputs of shape (D, H, W, 1).

Raw files are the official npz files (`<name>.npz` or `<name>_64.npz`, keys
`train_images` (N, D, H, W) uint8, `train_labels` (N, 1), ...), looked for in
`<data_dir>/medmnist/` before they are downloaded, as the 2-D sets' are. `--mode=predict`
reads volumes as `.npy` arrays or NIfTI files (`.nii`, `.nii.gz`), resampled to the
training size and scaled to 0-255 per volume (MedMNIST's own scaling of its crops).
"""
import os
import pathlib

import numpy as np

from medjax.config import ConfigError
from medjax.data.families import medmnist
from medjax.data.families.medmnist import MedmnistConfig, MedmnistInfo

SIZES = (28, 64)
CONFIG = {}  # the volume size is `data.image_size` (medmnist.CONFIG)
VOLUME_SUFFIXES = ('.npy', '.nii', '.nii.gz')

DATASETS = {
    'organmnist3d': MedmnistInfo('multiclass', 1, (
        'liver', 'kidney-right', 'kidney-left', 'femur-right', 'femur-left', 'bladder', 'heart',
        'lung-right', 'lung-left', 'spleen', 'pancreas'), 'abdominal CT, organ crops'),
    'nodulemnist3d': MedmnistInfo('binary', 1, ('benign', 'malignant'),
                                  'chest CT, lung nodules (LIDC-IDRI)'),
    'adrenalmnist3d': MedmnistInfo('binary', 1, ('normal', 'hyperplasia'),
                                   'abdominal CT, adrenal gland shapes'),
    'fracturemnist3d': MedmnistInfo('multiclass', 1, (
        'buckle rib fracture', 'nondisplaced rib fracture', 'displaced rib fracture'),
                                    'chest CT, rib fractures (RibFrac)'),
    'vesselmnist3d': MedmnistInfo('binary', 1, ('vessel', 'aneurysm'),
                                  'brain MRA, vessel segments (IntrA)'),
    'synapsemnist3d': MedmnistInfo('binary', 1, ('inhibitory synapse', 'excitatory synapse'),
                                   'electron microscopy, synapses'),
}


class Medmnist3d(medmnist.Medmnist):
  """The six 3-D MedMNIST data sets at 28 and 64 voxels."""

  VERSION = medmnist.tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release; examples in the official order.'}
  BUILDER_CONFIGS = [
      MedmnistConfig(name=medmnist.config_name(dataset, size), dataset=dataset, size=size,
                     dims=3, info=info, description=f'{info.description}, {size}^3 voxels')
      for dataset, info in DATASETS.items() for size in SIZES
  ]


def check_config(dataset: str, data_config) -> None:
  if dataset not in DATASETS:
    raise ConfigError(f'data.name=medmnist3d/{dataset}: unknown; MedMNIST 3-D sets are '
                      f'{", ".join(sorted(DATASETS))}')
  if data_config.image_size not in SIZES:
    raise ConfigError(f'data.image_size={data_config.image_size}: MedMNIST 3-D volumes are '
                      f'one of {SIZES} voxels a side')


def builder(dataset: str, data_config, prepared_dir: str) -> Medmnist3d:
  return Medmnist3d(raw_dir=os.path.join(os.path.expanduser(data_config.data_dir), 'medmnist'),
                    data_dir=prepared_dir,
                    config=medmnist.config_name(dataset, data_config.image_size),
                    file_format='array_record')


describe = medmnist.describe


def read_volume(path: pathlib.Path) -> np.ndarray:
  """A volume file as a float array (D, H, W[, C])."""
  if path.suffix == '.npy':
    return np.load(path, allow_pickle=False).astype(np.float32)
  import nibabel
  try:
    return np.asarray(nibabel.load(path).get_fdata(), np.float32)
  except nibabel.filebasedimages.ImageFileError as error:
    raise ValueError(f'not a readable NIfTI file ({error})') from None


def to_task_voxels(volume: np.ndarray, shape) -> np.ndarray:
  """A volume resampled (linearly) to the task's (D, H, W, C) and scaled to 0-255 uint8."""
  from scipy import ndimage
  if volume.ndim == len(shape) - 1:
    volume = volume[..., None]
  if volume.ndim != len(shape) or volume.shape[-1] != shape[-1]:
    raise ValueError(f'a volume of shape {volume.shape}; expected (D, H, W) or '
                     f'(D, H, W, {shape[-1]})')
  if not np.isfinite(volume).all():
    raise ValueError('the volume has NaN or infinite voxels')
  factors = [target / size for target, size in zip(shape[:-1], volume.shape[:-1])] + [1]
  volume = ndimage.zoom(volume, factors, order=1)
  low, high = volume.min(), volume.max()
  scaled = (volume - low) / (high - low) if high > low else np.zeros_like(volume)
  return np.round(scaled * 255).astype(np.uint8)


def read_inputs(path, task, data_config) -> list[tuple[str, dict | str]]:
  """`.npy` and NIfTI volumes (a file or a folder of them) in the training voxel format."""
  path = pathlib.Path(path)
  is_volume = lambda p: p.is_file() and p.name.lower().endswith(VOLUME_SUFFIXES)
  paths = sorted(filter(is_volume, path.rglob('*'))) if path.is_dir() else [path]
  shape = task.inputs['image'].shape
  rows = []
  for file in paths:
    try:
      rows.append((str(file), {'image': to_task_voxels(read_volume(file), shape)}))
    except (ValueError, OSError, EOFError) as error:
      rows.append((str(file), ' '.join(str(error).split())))
  return rows
