"""The UCR family: the archive's files (ECG5000) and a tiny NaN-padded one."""
import numpy as np
import pytest

import medjax.data
from medjax.config import ConfigError
from medjax.data import sources
from medjax.data.families import ucr
from tests.conftest import small_config


def _config(data_dir, name='ucr/ECG5000'):
  config = small_config('resnet1d', data=name)
  config.data.data_dir = str(data_dir)
  return config


@pytest.fixture(scope='module')
def ecg5000():
  return medjax.data.load(small_config('resnet1d', data='ucr/ECG5000').data)


def test_ecg5000_splits_labels_and_stratified_validation(ecg5000):
  task = ecg5000.task
  assert task.label_names == ('1', '2', '3', '4', '5') and task.kind == 'multiclass'
  assert task.inputs['signal'].shape == (140, 1)
  sizes = {split: len(source) for split, source in ecg5000.sources.items()}
  assert sizes == {'train': 400, 'val': 100, 'test': 4500}  # TEST is only the test split
  train = sources.read_all(ecg5000.sources['train'])
  val = sources.read_all(ecg5000.sources['val'])
  assert not set(train['row']) & set(val['row'])
  assert sorted(np.r_[train['row'], val['row']]) == list(range(500))
  # Stratified: each class's share of the validation split is about 20% of its TRAIN rows.
  full = np.bincount(np.r_[train['label'], val['label']], minlength=5)
  held = np.bincount(val['label'], minlength=5)
  assert np.all(np.abs(held - 0.2 * full) <= 1)
  # The first TEST line of the archive file, as read.
  with open(f'{small_config().data.data_dir}/ucr/ECG5000_TEST.tsv') as handle:
    first = handle.readline().split('\t')
  test = ecg5000.sources['test'][0]
  assert test['label'] == task.label_names.index(str(int(float(first[0]))))
  np.testing.assert_allclose(test['signal'][:, 0], np.asarray(first[1:], float), rtol=1e-6)


def _write(path, lines):
  path.write_text('\n'.join(lines) + '\n')


def test_a_nan_padded_file_with_numeric_labels(tmp_path):
  folder = tmp_path / 'ucr'
  folder.mkdir()
  _write(folder / 'Tiny_TRAIN.tsv', ['10\t1\t2\t3\t4', '2\t5\t6\tNaN\tNaN', '10\t1\tNaN\t3\t5',
                                     '2\t0\t0\t0\t0', '2\t1\t1\t1\tNaN', '10\t2\t2\t2\t2'])
  _write(folder / 'Tiny_TEST.tsv', ['2\t7\t8\t9', '10\t1\t2\t3\t4'])
  dataset = medjax.data.load(_config(tmp_path, 'ucr/Tiny').data)
  assert dataset.task.label_names == ('2', '10')  # sorted as numbers, names kept
  assert dataset.task.kind == 'binary' and dataset.task.inputs['signal'].shape == (4, 1)
  rows = {}
  for split in ('train', 'val'):
    arrays = sources.read_all(dataset.sources[split])
    rows.update({int(r): s[:, 0] for r, s in zip(arrays['row'], arrays['signal'])})
  np.testing.assert_array_equal(rows[1], [5, 6, 6, 6])  # trailing padding: last sample held
  np.testing.assert_array_equal(rows[2], [1, 2, 3, 5])  # interior gap: interpolated
  test = sources.read_all(dataset.sources['test'])
  np.testing.assert_array_equal(test['signal'][0, :, 0], [7, 8, 9, 9])  # shorter TEST series
  np.testing.assert_array_equal(test['label'], [0, 1])


def test_a_malformed_line_is_named(tmp_path):
  path = tmp_path / 'Bad_TRAIN.tsv'
  _write(path, ['1\t0.5\t0.25', '2\t0.1\tabc'])
  with pytest.raises(ValueError, match=r"Bad_TRAIN.tsv, line 2: 'abc' is not a number"):
    ucr.read_file(path)
  _write(path, ['1\tNaN\tNaN'])
  with pytest.raises(ValueError, match='line 1: the series has no values'):
    ucr.read_file(path)


def test_a_missing_file_says_where_to_put_it(tmp_path):
  with pytest.raises(medjax.data.download.MissingDataError, match='Nope_TRAIN.tsv'):
    medjax.data.load(_config(tmp_path, 'ucr/Nope').data)


def test_stratified_holdout_is_seeded():
  labels = np.repeat([0, 1, 2], [50, 30, 20])
  a, b = (ucr.stratified_holdout(labels, 0.2, seed) for seed in (0, 1))
  np.testing.assert_array_equal(a, ucr.stratified_holdout(labels, 0.2, 0))
  assert not np.array_equal(a, b)
  assert [int(a[labels == k].sum()) for k in range(3)] == [10, 6, 4]


def test_stratified_folds_are_seeded_balanced_and_stratified():
  labels = np.repeat([0, 1, 2], [52, 31, 17])
  folds = ucr.stratified_folds(labels, 5, seed=0)
  np.testing.assert_array_equal(folds, ucr.stratified_folds(labels, 5, seed=0))
  assert not np.array_equal(folds, ucr.stratified_folds(labels, 5, seed=1))
  assert sorted(np.bincount(folds)) == [20, 20, 20, 20, 20]
  for value in range(3):  # each class's share of every fold, within one series
    counts = np.bincount(folds[labels == value], minlength=5)
    assert counts.max() - counts.min() <= 1


def test_cross_validation_validates_on_every_train_series_once(tmp_path):
  folder = tmp_path / 'ucr'
  folder.mkdir()
  _write(folder / 'Tiny_TRAIN.tsv', [f'{1 + (i % 3 == 0)}\t{i}\t{i + 1}' for i in range(12)])
  _write(folder / 'Tiny_TEST.tsv', ['1\t7\t8', '2\t1\t2'])
  config = _config(tmp_path, 'ucr/Tiny')
  config.data.cv_folds = 3
  validated = []
  for fold in range(3):
    config.data.cv_fold = fold
    dataset = medjax.data.load(config.data)
    train, val = (sources.read_all(dataset.sources[split]) for split in ('train', 'val'))
    assert not set(train['row']) & set(val['row'])
    assert sorted(np.r_[train['row'], val['row']]) == list(range(12))
    # 8 and 4 series of the classes dealt to 3 folds: 2-3 and 1-2 of them, 4 in all.
    counts = np.bincount(val['label'], minlength=2)
    assert counts[0] in (2, 3) and counts[1] in (1, 2) and counts.sum() == 4
    assert len(dataset.sources['test']) == 2
    validated += list(val['row'])
  assert sorted(validated) == list(range(12))
  config.data.cv_fold = 3
  with pytest.raises(ConfigError, match='data.cv_fold=3 must be below'):
    medjax.data.load(config.data)
  config.data.cv_folds, config.data.cv_fold = 0, 1
  with pytest.raises(ConfigError, match='cross-validation is off'):
    medjax.data.check_config(config.data)
