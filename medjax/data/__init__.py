"""Data registry: `load(config.data)` prepares a data set once and returns its
task description and one random-access source per split.

`config.data.name` is `<family>/<data set>`, e.g. `medmnist/breastmnist`.
"""
import dataclasses
import fcntl
import os
from typing import Any, Mapping

import numpy as np

from medjax.data import medmnist, sources as sources_lib
from medjax.data.task import InputSpec, Task


@dataclasses.dataclass(frozen=True)
class Dataset:
  task: Task
  sources: Mapping[str, Any]  # split name -> random-access source of decoded examples


def _class_counts(source, kind: str, num_classes: int) -> tuple[int, ...]:
  labels = sources_lib.read_all(source, keys=('label',))['label']
  counts = labels.sum(0) if kind == 'multilabel' else np.bincount(labels, minlength=num_classes)
  return tuple(int(c) for c in counts)


def _load_medmnist(dataset: str, data_config) -> Dataset:
  if dataset not in medmnist.DATASETS:
    raise ValueError(f'data.name=medmnist/{dataset}: unknown; MedMNIST 2-D sets are '
                     f'{", ".join(sorted(medmnist.DATASETS))}')
  if data_config.image_size not in medmnist.SIZES:
    raise ValueError(f'data.image_size={data_config.image_size} is not one of {medmnist.SIZES}')
  prepared_dir = os.path.expanduser(data_config.prepared_dir)
  os.makedirs(prepared_dir, exist_ok=True)
  # Several runs (a parallel sweep, the processes of one host) may start at once: one
  # prepares while the others wait, then build their builder from what it wrote.
  with open(os.path.join(prepared_dir, '.prepare.lock'), 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    builder = medmnist.Medmnist(
        raw_dir=os.path.join(os.path.expanduser(data_config.data_dir), 'medmnist'),
        data_dir=prepared_dir, config=medmnist.config_name(dataset, data_config.image_size),
        file_format='array_record')
    builder.download_and_prepare()
  info = builder.builder_config.info
  size = data_config.image_size
  example_bytes = size * size * info.channels + 16  # uint8 pixels, label and index
  sources = {split: sources_lib.in_memory_if_small(builder.as_data_source(split=split),
                                                   example_bytes, data_config.in_memory_mib)
             for split in medmnist.SPLITS}
  task = Task(
      name=f'medmnist/{dataset}', kind=info.kind, label_names=info.label_names,
      class_counts=_class_counts(sources['train'], info.kind, len(info.label_names)),
      inputs={'image': InputSpec((size, size, info.channels))})
  return Dataset(task=task, sources=sources)


FAMILIES = {'medmnist': _load_medmnist}


def load(data_config) -> Dataset:
  family, _, dataset = data_config.name.partition('/')
  if family not in FAMILIES or not dataset:
    raise ValueError(f'data.name={data_config.name!r}: expected <family>/<data set> with '
                     f'family one of {sorted(FAMILIES)}')
  return FAMILIES[family](dataset, data_config)
