"""Data registry: `load(config.data)` prepares a data set once and returns its
task description and one random-access source per split.

`config.data.name` is `<family>/<data set>`, e.g. `medmnist/breastmnist`,
`ucr/ECG5000`, `mitdb/aami`. The family module (medjax/data/families/) knows only
its raw files and its TFDS builder; the shared work is done here once: the
prepare lock, decoding small splits into memory, class counts, per-channel
statistics of the standardised inputs, and building the `Task`.

`data.refit` (once a recipe is chosen on validation) trains on the training and
validation examples together: the sources are then 'train' (both) and 'test', with
no validation split, for every family.
"""
import contextlib
import dataclasses
import fcntl
import os
import sys
from typing import Any, Mapping

import numpy as np
import tensorflow_datasets as tfds
from absl import logging as absl_logging

from medjax.config import ConfigError
from medjax.data import sources as sources_lib
from medjax.data.families import FAMILIES
from medjax.data import modalities
from medjax.data.modalities import MODALITIES
from medjax.data.task import InputSpec, Task

SPLITS = ('train', 'val', 'test')


@dataclasses.dataclass(frozen=True)
class Dataset:
  task: Task
  sources: Mapping[str, Any]  # split name -> random-access source of decoded examples


def family_of(data_name: str):
  """(family module, data set name) of `data.name`, or a ConfigError naming it."""
  family, _, dataset = data_name.partition('/')
  if family not in FAMILIES or not dataset:
    raise ConfigError(f'data.name={data_name!r}: expected <family>/<data set> with family '
                      f'one of {sorted(FAMILIES)}')
  return FAMILIES[family], dataset


def check_config(data_config) -> None:
  """Refuses an unknown family or data set, a bad family or augmentation field, before
  preparing."""
  family, dataset = family_of(data_config.name)
  if data_config.cv_folds and not getattr(family, 'CROSS_VALIDATES', False):
    raise ConfigError(f'data.cv_folds={data_config.cv_folds}: the {data_config.name.split("/")[0]} '
                      'family has a fixed validation split (set data.cv_folds=0)')
  if data_config.cv_fold >= max(data_config.cv_folds, 1):
    raise ConfigError(f'data.cv_fold={data_config.cv_fold} must be below data.cv_folds='
                      f'{data_config.cv_folds}' + (' (cross-validation is off)'
                                                  if not data_config.cv_folds else ''))
  if data_config.refit and data_config.cv_folds:
    raise ConfigError(f'data.refit trains on every fold of the training data, so there is '
                      f'no fold to validate on: set data.cv_folds=0 (it is '
                      f'{data_config.cv_folds})')
  family.check_config(dataset, data_config)
  modalities.check_config(data_config.augment)


def _class_counts(source, kind: str, num_classes: int) -> tuple[int, ...]:
  labels = sources_lib.read_all(source, keys=('label',))['label']
  counts = labels.sum(0) if kind == 'multilabel' else np.bincount(labels, minlength=num_classes)
  return tuple(int(c) for c in counts)


def _with_statistics(key: str, spec: InputSpec, train_source) -> InputSpec:
  """`spec` with the per-channel mean and deviation of the training split (NaN skipped)."""
  if not MODALITIES[spec.modality].STANDARDISED:
    return spec
  values = sources_lib.read_all(train_source, keys=(key,))[key].astype(np.float64)
  values = values.reshape(-1, values.shape[-1])
  mean, std = np.nanmean(values, 0), np.nanstd(values, 0)
  std = np.where(np.isfinite(std) & (std > 1e-8), std, 1.0)
  return dataclasses.replace(spec, mean=tuple(np.nan_to_num(mean).tolist()),
                             std=tuple(std.tolist()))


@contextlib.contextmanager
def _quiet_tfds():
  """TFDS warns about every builder config made at run time (UCR sets, MIT-BIH
  settings): expected here, so its warnings are kept off the command line's stderr,
  and so are its progress bars where stderr is not a terminal (batch jobs, logs)."""
  if not sys.stderr.isatty():
    tfds.disable_progress_bar()
  verbosity = absl_logging.get_verbosity()
  absl_logging.set_verbosity(absl_logging.ERROR)
  try:
    yield
  finally:
    absl_logging.set_verbosity(verbosity)


def load(data_config) -> Dataset:
  check_config(data_config)
  family, dataset = family_of(data_config.name)
  prepared_dir = os.path.expanduser(data_config.prepared_dir)
  os.makedirs(prepared_dir, exist_ok=True)
  # Several runs (a parallel sweep, the processes of one host) may start at once: one
  # prepares while the others wait, then build their builder from what it wrote.
  with open(os.path.join(prepared_dir, '.prepare.lock'), 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    with _quiet_tfds():
      builder = family.builder(dataset, data_config, prepared_dir)
      builder.download_and_prepare()
  described = family.describe(builder, data_config)
  example_bytes = 64 + sum(int(np.prod(spec.shape)) * np.dtype(spec.dtype).itemsize
                           for spec in described.inputs.values())
  sources = {split: sources_lib.in_memory_if_small(builder.as_data_source(split=split),
                                                   example_bytes, data_config.in_memory_mib)
             for split in SPLITS}
  if data_config.refit:
    sources = {'train': sources_lib.concatenated([sources['train'], sources['val']]),
               'test': sources['test']}
  inputs = {key: _with_statistics(key, spec, sources['train'])
            for key, spec in described.inputs.items()}
  task = Task(
      name=data_config.name, kind=described.kind, label_names=described.label_names,
      class_counts=_class_counts(sources['train'], described.kind, len(described.label_names)),
      inputs=inputs, group_key=described.group_key, scores=described.scores)
  return Dataset(task=task, sources=sources)
