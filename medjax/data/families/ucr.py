"""The UCR time-series classification archive (Dau et al. 2019): any of its data sets.

`data.name = 'ucr/<Name>'` with the archive's name (`ucr/ECG5000`). Raw files are
`<data_dir>/ucr/<Name>_TRAIN.tsv` and `<Name>_TEST.tsv`: one series a line, the label
first, tab separated. Series shorter than the longest are padded with NaN in the
archive's files (and may be ragged in others): a trailing gap repeats the last
sample, an interior gap is interpolated linearly. Labels are mapped to 0..K-1 in
sorted order (numeric where they are numbers) and their names kept. Validation is
a seeded stratified `data.ucr.val_fraction` of TRAIN, or with `data.cv_folds=k` fold
`data.cv_fold` of a seeded stratified k-fold partition of TRAIN (the archive's sets are
small: k runs validate on every TRAIN series once, for choosing a recipe); TEST is only
the test split.
"""
import dataclasses
import os
import pathlib
import re

import numpy as np
import tensorflow_datasets as tfds

from medjax.config import ConfigError
from medjax.data.download import MissingDataError
from medjax.data.families import Description
from medjax.data.task import InputSpec

CONFIG = {
    'data.ucr.val_fraction': 0.2,  # of TRAIN, stratified by class
    'data.ucr.split_seed': 0,      # the validation draw or folds (fixed across training seeds)
}
CROSS_VALIDATES = True
ARCHIVE = 'https://www.cs.ucr.edu/~eamonn/time_series_data_2018/'
_NAME = re.compile(r'^[A-Za-z0-9_\-]+$')


def check_config(dataset: str, data_config) -> None:
  if not _NAME.match(dataset):
    raise ConfigError(f'data.name=ucr/{dataset}: a UCR archive name has only letters, '
                      'digits, - and _ (e.g. ucr/ECG5000)')
  if not 0.0 < data_config.ucr.val_fraction < 1.0:
    raise ConfigError(f'data.ucr.val_fraction={data_config.ucr.val_fraction} must be in (0, 1)')
  if data_config.ucr.split_seed < 0:
    raise ConfigError(f'data.ucr.split_seed={data_config.ucr.split_seed} must be >= 0')


def _fill_gaps(series: np.ndarray) -> np.ndarray:
  """NaN gaps: interior ones interpolated linearly, edge ones the nearest sample."""
  missing = np.isnan(series)
  if missing.any():
    positions = np.arange(len(series))
    series = series.copy()
    series[missing] = np.interp(positions[missing], positions[~missing], series[~missing])
  return series


def parse_line(line: str) -> tuple[str, np.ndarray]:
  """(label, values) of one line in the UCR layout (tab, comma or space separated);
  ValueError saying what is wrong."""
  fields = [f for f in re.split(r'[\t,]' if re.search(r'[\t,]', line) else r'\s+',
                                line.strip())]
  if len(fields) < 2:
    raise ValueError('expected a label and at least one value')
  try:
    values = np.asarray([float(f) if f.strip() else np.nan for f in fields[1:]], np.float64)
  except ValueError:
    bad = next(f for f in fields[1:] if not _is_number(f))
    raise ValueError(f'{bad!r} is not a number') from None
  if np.isnan(values).all():
    raise ValueError('the series has no values (all NaN)')
  if np.isinf(values).any():
    raise ValueError('the series has infinite values')
  return fields[0].strip(), values


def _is_number(text: str) -> bool:
  try:
    float(text)
    return True
  except ValueError:
    return False


def read_file(path) -> tuple[list[str], list[np.ndarray]]:
  """Labels and (unpadded, trailing-NaN-trimmed) series of one UCR file; a malformed
  line is a ValueError naming the file and line."""
  labels, series = [], []
  with open(path) as handle:
    for number, line in enumerate(handle, 1):
      if not line.strip():
        continue
      try:
        label, values = parse_line(line)
      except ValueError as error:
        raise ValueError(f'{path}, line {number}: {error}') from None
      last = np.flatnonzero(~np.isnan(values))[-1]
      labels.append(label)
      series.append(values[:last + 1])
  if not series:
    raise ValueError(f'{path} holds no series')
  return labels, series


def to_length(values: np.ndarray, length: int) -> np.ndarray:
  """One series as (length, 1) float32: gaps filled, a shorter one held at its last sample."""
  if len(values) > length:
    raise ValueError(f'series of {len(values)} samples is longer than the {length} '
                     'the model was trained on')
  padded = np.full(length, np.nan)
  padded[:len(values)] = values
  return _fill_gaps(padded).astype(np.float32)[:, None]


def sorted_label_names(labels) -> tuple[str, ...]:
  unique = set(labels)
  if all(_is_number(label) for label in unique):
    return tuple(sorted(unique, key=float))
  return tuple(sorted(unique))


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
  """Boolean mask of the held-out rows: round(fraction x n_k) of each class k (at least
  one where a class has two or more), drawn with a generator seeded by `seed`."""
  rng = np.random.default_rng(seed)
  held_out = np.zeros(len(labels), bool)
  for value in np.unique(labels):
    rows = np.flatnonzero(labels == value)
    count = int(round(fraction * len(rows)))
    count = min(max(count, 1 if len(rows) > 1 else 0), len(rows) - 1)
    held_out[rng.permutation(rows)[:count]] = True
  return held_out


def stratified_folds(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
  """The fold (0..folds-1) of each row: each class's rows in a seeded random order,
  the classes one after another, dealt to the folds in turn, so that every fold holds
  each class's share (within one series) and the folds' sizes differ by at most one."""
  rng = np.random.default_rng(seed)
  order = np.concatenate([rng.permutation(np.flatnonzero(labels == value))
                          for value in np.unique(labels)])
  fold = np.empty(len(labels), np.int64)
  fold[order] = np.arange(len(labels)) % folds
  return fold


@dataclasses.dataclass
class UcrConfig(tfds.core.BuilderConfig):
  dataset: str = ''
  length: int = 0
  label_names: tuple = ()
  val_fraction: float = 0.2
  split_seed: int = 0
  cv_folds: int = 0
  cv_fold: int = 0


class Ucr(tfds.core.GeneratorBasedBuilder):
  """One UCR archive data set: train (TRAIN less validation), val and test (TEST)."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}

  def __init__(self, *, raw_dir: pathlib.Path, **kwargs):
    self._raw_dir = raw_dir
    super().__init__(**kwargs)

  def _info(self):
    config = self.builder_config
    return tfds.core.DatasetInfo(
        builder=self,
        description=f'UCR archive {config.dataset}',
        features=tfds.features.FeaturesDict({
            'signal': tfds.features.Tensor(shape=(config.length, 1), dtype=np.float32),
            'label': tfds.features.ClassLabel(names=config.label_names),
            'index': tfds.features.Scalar(dtype=np.int64, doc='position in this split'),
            'row': tfds.features.Scalar(dtype=np.int64, doc='line in the archive file'),
        }),
        supervised_keys=('signal', 'label'),
        disable_shuffling=True,
        homepage=ARCHIVE,
        citation='Dau et al., The UCR time series archive, IEEE/CAA J. Autom. Sinica (2019)',
    )

  def _split_generators(self, dl_manager):
    config = self.builder_config
    train_labels, train_series = read_file(raw_path(self._raw_dir, config.dataset, 'TRAIN'))
    test_labels, test_series = read_file(raw_path(self._raw_dir, config.dataset, 'TEST'))
    if config.cv_folds:
      held_out = stratified_folds(np.asarray(train_labels), config.cv_folds,
                                  config.split_seed) == config.cv_fold
    else:
      held_out = stratified_holdout(np.asarray(train_labels), config.val_fraction,
                                    config.split_seed)
    rows = np.arange(len(train_labels))
    return {
        'train': self._generate_examples(train_labels, train_series, rows[~held_out]),
        'val': self._generate_examples(train_labels, train_series, rows[held_out]),
        'test': self._generate_examples(test_labels, test_series, np.arange(len(test_labels))),
    }

  def _generate_examples(self, labels, series, rows):
    length, names = self.builder_config.length, self.builder_config.label_names
    for index, row in enumerate(rows):
      yield index, {'signal': to_length(series[row], length),
                    'label': names.index(labels[row]), 'index': index, 'row': int(row)}


def raw_path(raw_dir: pathlib.Path, dataset: str, part: str) -> pathlib.Path:
  path = raw_dir / f'{dataset}_{part}.tsv'
  if not path.exists():
    raise MissingDataError(
        f'{path} is missing: the UCR archive ({ARCHIVE}) is distributed as one '
        f'password-protected zip; place {dataset}_TRAIN.tsv and {dataset}_TEST.tsv in '
        f'{raw_dir} (or set $MEDJAX_DATA_DIR / config.data.data_dir)')
  return path


def builder(dataset: str, data_config, prepared_dir: str) -> Ucr:
  raw_dir = pathlib.Path(os.path.expanduser(data_config.data_dir)) / 'ucr'
  labels, lengths = [], []
  for part in ('TRAIN', 'TEST'):
    part_labels, part_series = read_file(raw_path(raw_dir, dataset, part))
    labels += part_labels
    lengths += [len(s) for s in part_series]
  fraction, seed = data_config.ucr.val_fraction, data_config.ucr.split_seed
  folds, fold = data_config.cv_folds, data_config.cv_fold
  validation = f'cv{folds}fold{fold}' if folds else f'val{fraction:g}'
  config = UcrConfig(
      name=f'{dataset.lower().replace("-", "_")}_len{max(lengths)}_{validation}_seed{seed}',
      dataset=dataset, length=max(lengths), label_names=sorted_label_names(labels),
      val_fraction=fraction, split_seed=seed, cv_folds=folds, cv_fold=fold)
  return Ucr(raw_dir=raw_dir, data_dir=prepared_dir, config=config, file_format='array_record')


def describe(built: Ucr, data_config) -> Description:
  config = built.builder_config
  return Description(kind='binary' if len(config.label_names) == 2 else 'multiclass',
                     label_names=tuple(config.label_names),
                     inputs={'signal': InputSpec('signal', (config.length, 1))})


def read_inputs(path, task, data_config) -> list[tuple[str, dict | str]]:
  """Series in the UCR layout (label or id first; tab, comma or space separated), one
  row each; a malformed line gets its error and the others are still read."""
  path = pathlib.Path(path)
  files = (sorted(p for p in path.rglob('*') if p.suffix.lower() in ('.tsv', '.csv', '.txt'))
           if path.is_dir() else [path])
  length = task.inputs['signal'].shape[0]
  rows = []
  for file in files:
    try:
      lines = file.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
      rows.append((str(file), f'cannot read: {error}'))
      continue
    for number, line in enumerate(lines, 1):
      if not line.strip():
        continue
      name = f'{file}:{number}'
      try:
        _, values = parse_line(line)
        rows.append((name, {'signal': to_length(values[:np.flatnonzero(~np.isnan(values))[-1]
                                                       + 1], length)}))
      except ValueError as error:
        rows.append((name, str(error)))
  return rows
