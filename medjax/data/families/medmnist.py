"""MedMNIST v2 (Yang et al., Scientific Data 2023) as a TFDS builder.

One builder config per 2-D data set and size: `breastmnist` (28 px) and
`breastmnist_64`, `_128`, `_224`. Raw files are the official npz files
(`<name>.npz` or `<name>_<size>.npz`, keys `train_images`, `train_labels`, ...),
looked for in `<data_dir>/medmnist/` before they are downloaded. Examples are
written as ArrayRecord (no TensorFlow needed) and read with `tfds.data_source`.
"""
import dataclasses
import os
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from medjax.config import ConfigError
from medjax.data.download import locate_or_download
from medjax.data.families import Description
from medjax.data.modalities import image_files
from medjax.data.task import InputSpec

URL = 'https://zenodo.org/records/10519652/files/{filename}?download=1'
SIZES = (28, 64, 128, 224)
SPLITS = ('train', 'val', 'test')
CONFIG = {'data.image_size': 28}  # MedMNIST: 28, 64, 128 or 224

_ORGANS = ('bladder', 'femur-left', 'femur-right', 'heart', 'kidney-left', 'kidney-right',
           'liver', 'lung-left', 'lung-right', 'pancreas', 'spleen')


@dataclasses.dataclass(frozen=True)
class MedmnistInfo:
  kind: str  # binary | multiclass | multilabel | ordinal
  channels: int
  label_names: tuple[str, ...]
  description: str


DATASETS = {
    'pathmnist': MedmnistInfo('multiclass', 3, (
        'adipose', 'background', 'debris', 'lymphocytes', 'mucus', 'smooth muscle',
        'normal colon mucosa', 'cancer-associated stroma',
        'colorectal adenocarcinoma epithelium'), 'colon pathology (NCT-CRC-HE-100K)'),
    'chestmnist': MedmnistInfo('multilabel', 1, (
        'atelectasis', 'cardiomegaly', 'effusion', 'infiltration', 'mass', 'nodule',
        'pneumonia', 'pneumothorax', 'consolidation', 'edema', 'emphysema', 'fibrosis',
        'pleural thickening', 'hernia'), 'chest X-ray (NIH ChestX-ray14)'),
    'dermamnist': MedmnistInfo('multiclass', 3, (
        'actinic keratoses and intraepithelial carcinoma', 'basal cell carcinoma',
        'benign keratosis-like lesions', 'dermatofibroma', 'melanoma', 'melanocytic nevi',
        'vascular lesions'), 'dermatoscopy (HAM10000)'),
    'octmnist': MedmnistInfo('multiclass', 1, (
        'choroidal neovascularization', 'diabetic macular edema', 'drusen', 'normal'),
                             'retinal OCT'),
    'pneumoniamnist': MedmnistInfo('binary', 1, ('normal', 'pneumonia'),
                                   'paediatric chest X-ray'),
    'retinamnist': MedmnistInfo('ordinal', 3, ('0', '1', '2', '3', '4'),
                                'fundus camera, diabetic retinopathy grade'),
    'breastmnist': MedmnistInfo('binary', 1, ('malignant', 'normal, benign'),
                                'breast ultrasound'),
    'bloodmnist': MedmnistInfo('multiclass', 3, (
        'basophil', 'eosinophil', 'erythroblast', 'immature granulocytes', 'lymphocyte',
        'monocyte', 'neutrophil', 'platelet'), 'blood cell microscopy'),
    'tissuemnist': MedmnistInfo('multiclass', 1, (
        'collecting duct, connecting tubule', 'distal convoluted tubule',
        'glomerular endothelial cells', 'interstitial endothelial cells', 'leukocytes',
        'podocytes', 'proximal tubule segments', 'thick ascending limb'),
                                'kidney cortex microscopy'),
    'organamnist': MedmnistInfo('multiclass', 1, _ORGANS, 'abdominal CT, axial'),
    'organcmnist': MedmnistInfo('multiclass', 1, _ORGANS, 'abdominal CT, coronal'),
    'organsmnist': MedmnistInfo('multiclass', 1, _ORGANS, 'abdominal CT, sagittal'),
}


def config_name(dataset: str, size: int) -> str:
  return dataset if size == 28 else f'{dataset}_{size}'


@dataclasses.dataclass
class MedmnistConfig(tfds.core.BuilderConfig):
  dataset: str = ''
  size: int = 28
  dims: int = 2                     # 2: images (size, size, C); 3: volumes (size, size, size, C)
  info: MedmnistInfo | None = None  # of `dataset`; the 2-D sets' by default

  def __post_init__(self):
    if self.info is None:
      self.info = DATASETS[self.dataset]

  @property
  def filename(self) -> str:
    return f'{config_name(self.dataset, self.size)}.npz'

  @property
  def shape(self) -> tuple[int, ...]:
    """An example's image (or volume) shape, channels last."""
    return (self.size,) * self.dims + (self.info.channels,)


class Medmnist(tfds.core.GeneratorBasedBuilder):
  """The 12 two-dimensional MedMNIST v2 data sets at 28, 64, 128 and 224 px."""

  VERSION = tfds.core.Version('1.1.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.',
                   '1.1.0': 'Examples kept in the official order: position == index.'}
  BUILDER_CONFIGS = [
      MedmnistConfig(name=config_name(dataset, size), dataset=dataset, size=size,
                     description=f'{info.description}, {size}x{size}')
      for dataset, info in DATASETS.items() for size in SIZES
  ]

  def __init__(self, *, raw_dir: str, **kwargs):
    """`raw_dir` holds (or receives) the official npz files."""
    self._raw_dir = raw_dir
    super().__init__(**kwargs)

  def _info(self):
    config = self.builder_config
    shape = config.shape
    if config.info.kind == 'multilabel':
      label = tfds.features.Tensor(shape=(len(config.info.label_names),), dtype=np.uint8)
    else:
      label = tfds.features.ClassLabel(names=config.info.label_names)
    return tfds.core.DatasetInfo(
        builder=self,
        description=f'MedMNIST {config.dataset}: {config.description}',
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Tensor(shape=shape, dtype=np.uint8),
            'label': label,
            'index': tfds.features.Scalar(dtype=np.int64,
                                          doc='position in the official split'),
        }),
        supervised_keys=('image', 'label'),
        disable_shuffling=True,
        homepage='https://medmnist.com/',
        citation='Yang et al., MedMNIST v2, Scientific Data 10, 41 (2023)',
    )

  def _split_generators(self, dl_manager):
    config = self.builder_config
    path = locate_or_download(self._raw_dir, config.filename, URL.format(filename=config.filename))
    arrays = read_npz(path, config)
    return {split: self._generate_examples(*arrays[split]) for split in SPLITS}

  def _generate_examples(self, images, labels):
    multilabel = self.builder_config.info.kind == 'multilabel'
    for index, (image, label) in enumerate(zip(images, labels)):
      yield index, {'image': image, 'label': label if multilabel else int(label[0]),
                    'index': index}


def read_npz(path, config: MedmnistConfig):
  """Loads and checks one official npz file; returns {split: (images N x shape, channels
  last, labels N x L)}. The files store one-channel images without a channel axis."""
  info = config.info
  expected_image = config.shape if info.channels > 1 else config.shape[:-1]
  label_width = len(info.label_names) if info.kind == 'multilabel' else 1
  try:
    with np.load(path) as npz:
      arrays = {split: (npz[f'{split}_images'], npz[f'{split}_labels']) for split in SPLITS}
  except (OSError, ValueError, KeyError, EOFError) as error:
    raise ValueError(f'{path} is not a readable MedMNIST npz file ({error})') from None
  result = {}
  for split, (images, labels) in arrays.items():
    if images.shape[1:] != expected_image or images.dtype != np.uint8:
      raise ValueError(f'{path}: {split}_images has shape {images.shape} and dtype '
                       f'{images.dtype}; expected (N, {", ".join(map(str, expected_image))}) uint8')
    labels = labels.reshape(len(labels), -1)
    if labels.shape != (len(images), label_width):
      raise ValueError(f'{path}: {split}_labels has shape {labels.shape}; expected '
                       f'({len(images)}, {label_width})')
    if info.kind != 'multilabel' and (labels.min() < 0 or labels.max() >= len(info.label_names)):
      raise ValueError(f'{path}: {split}_labels outside 0..{len(info.label_names) - 1}')
    result[split] = (images.reshape((len(images),) + config.shape), labels)
  return result


def check_config(dataset: str, data_config) -> None:
  if dataset not in DATASETS:
    raise ConfigError(f'data.name=medmnist/{dataset}: unknown; MedMNIST 2-D sets are '
                      f'{", ".join(sorted(DATASETS))}')
  if data_config.image_size not in SIZES:
    raise ConfigError(f'data.image_size={data_config.image_size} is not one of {SIZES}')


def builder(dataset: str, data_config, prepared_dir: str) -> Medmnist:
  return Medmnist(raw_dir=os.path.join(os.path.expanduser(data_config.data_dir), 'medmnist'),
                  data_dir=prepared_dir, config=config_name(dataset, data_config.image_size),
                  file_format='array_record')


def describe(built: Medmnist, data_config) -> Description:
  config = built.builder_config
  return Description(kind=config.info.kind, label_names=config.info.label_names,
                     inputs={'image': InputSpec('image', config.shape, dtype='uint8')})


def read_inputs(path, task, data_config) -> list[tuple[str, dict | str]]:
  """PNG, JPEG and DICOM files (a file or a folder of them) in the training pixel format."""
  path = pathlib.Path(path)
  paths = (sorted(p for p in path.rglob('*') if p.is_file()
                  and p.suffix.lower() in image_files.SUFFIXES) if path.is_dir() else [path])
  shape = task.inputs['image'].shape
  rows = []
  for file in paths:
    try:
      rows.append((str(file), {'image': image_files.to_task_pixels(image_files.read_image(file),
                                                                   shape)}))
    except (image_files.ImageReadError, OSError) as error:
      rows.append((str(file), ' '.join(str(error).split())))
  return rows
