"""The MIT-BIH family: AAMI beats of a record, the inter-patient split, RR features."""
import collections
import os
import pathlib

import ml_collections
import numpy as np
import pytest
import wfdb

import medjax.data
from medjax.config import ConfigError
from medjax.data import sources
from medjax.data.families import mitdb
from tests.conftest import small_config

RECORD = os.path.join(os.environ['MEDJAX_DATA_DIR'], 'mitdb', '208')


def _fields(**values):
  return ml_collections.ConfigDict({field.split('.')[-1]: default
                                    for field, default in mitdb.CONFIG.items()} | values)


def test_beats_per_aami_class_match_the_annotation_file():
  cfg = _fields()
  windows, features, labels, peaks = mitdb.read_record(RECORD, cfg)
  annotation = wfdb.rdann(RECORD, 'atr')
  inside = [(sample, symbol) for sample, symbol in zip(annotation.sample, annotation.symbol)
            if symbol in mitdb.AAMI_SYMBOLS and sample >= cfg.window_before
            and sample + cfg.window_after <= 650000]
  expected = collections.Counter(mitdb.AAMI_SYMBOLS[symbol] for _, symbol in inside)
  got = collections.Counter(mitdb.AAMI_CLASSES[label] for label in labels)
  assert got == expected and {'N', 'S', 'V', 'F'} <= set(got)  # 208 holds F beats
  np.testing.assert_array_equal(peaks, [sample for sample, _ in inside])
  assert windows.shape == (len(labels), 256, 2) and features.shape == (len(labels), 8)
  # The window is the record's leads around the R peak (MLII first; 208 has MLII, V1).
  raw = wfdb.rdrecord(RECORD).p_signal
  unfiltered, _, _, _ = mitdb.read_record(RECORD, _fields(baseline_filter=False))
  np.testing.assert_allclose(unfiltered[5], raw[peaks[5] - 90:peaks[5] + 166], rtol=1e-6)


def test_a_missing_lead_is_nan():
  windows, _, _, _ = mitdb.read_record(RECORD, _fields(leads='MLII,V5'))
  assert np.all(np.isnan(windows[..., 1])) and np.all(np.isfinite(windows[..., 0]))


def test_inter_patient_split():
  assert not set(mitdb.DS1) & set(mitdb.DS2)
  assert not set(mitdb.PACED) & (set(mitdb.DS1) | set(mitdb.DS2))
  assert len(mitdb.DS1) == len(mitdb.DS2) == 22 and len(mitdb.RECORDS) == 48
  splits = mitdb.split_records(_fields())
  assert set(splits['train']) | set(splits['val']) == set(mitdb.DS1)
  assert not set(splits['train']) & set(splits['val']) and splits['test'] == mitdb.DS2
  with pytest.raises(ConfigError, match=r'records \[101\] are in both train and val'):
    mitdb.split_records(_fields(train_records='101,106', val_records='101'))
  with pytest.raises(ConfigError, match='paced'):
    mitdb.split_records(_fields(val_records='217'))


def test_cross_validation_folds_are_whole_records_balanced_in_classes():
  raw_dir = pathlib.Path(os.environ['MEDJAX_DATA_DIR']) / 'mitdb'
  splits = mitdb.split_records(_fields())
  validated = []
  for fold in range(4):
    folded = mitdb.cross_validation_split(splits, raw_dir, 4, fold)
    assert set(folded['train']) | set(folded['val']) == set(mitdb.DS1)
    assert not set(folded['train']) & set(folded['val']) and folded['test'] == mitdb.DS2
    # Each fold's validation records hold N and V beats, and 4-7 of the 22 records.
    classes = {mitdb.AAMI_SYMBOLS[symbol] for record in folded['val']
               for symbol in wfdb.rdann(str(raw_dir / str(record)), 'atr').symbol
               if symbol in mitdb.AAMI_SYMBOLS}
    assert {'N', 'V'} <= classes and 4 <= len(folded['val']) <= 7
    validated += folded['val']
  assert sorted(validated) == sorted(mitdb.DS1)  # every record validated once
  assert mitdb.cross_validation_split(splits, raw_dir, 4, 2) == mitdb.cross_validation_split(
      splits, raw_dir, 4, 2)
  config = small_config('resnet1d', data='mitdb/aami')
  config.data.mitdb.train_records, config.data.mitdb.val_records = '101,106', '118'
  config.data.cv_folds = 4
  with pytest.raises(ConfigError, match='data.cv_folds=4: MIT-BIH folds are whole records'):
    medjax.data.check_config(config.data)


def test_rr_features_by_hand():
  peaks = np.array([0, 360, 720, 1440, 1800])  # RR 1, 1, 2, 1 s at 360 Hz
  features = mitdb.rr_features(peaks, 360.0)
  previous, following, local, average = features[:, :4].T
  np.testing.assert_allclose(previous, [1, 1, 1, 2, 1])  # the first beat: its next interval
  np.testing.assert_allclose(following, [1, 1, 2, 1, 1])  # the last beat: its previous one
  np.testing.assert_allclose(local, [1, 1, 1, 5 / 4, 6 / 5])  # mean of the previous ones
  np.testing.assert_allclose(average, 5 / 4)
  np.testing.assert_allclose(features[:, 4], previous / 1.25)
  np.testing.assert_allclose(features[:, 7], previous / following)


@pytest.fixture(scope='session')
def tiny_mitdb():
  return medjax.data.load(mitdb_config().data)


def mitdb_config():
  config = small_config('resnet1d', data='mitdb/aami')
  config.data.mitdb.update(train_records='101', val_records='118', test_records='100')
  return config


def test_the_registry_builds_the_task(tiny_mitdb):
  task = tiny_mitdb.task
  assert task.label_names == mitdb.AAMI_CLASSES and task.group_key == 'record'
  assert task.scores == ('aami',) and task.inputs['signal'].shape == (256, 2)
  assert task.inputs['tabular'].feature_names == mitdb.RR_FEATURES
  records = {split: set(sources.read_all(source, keys=('record',))['record'])
             for split, source in tiny_mitdb.sources.items()}
  assert records == {'train': {101}, 'val': {118}, 'test': {100}}
  # Standardised with the training split's statistics.
  train = sources.read_all(tiny_mitdb.sources['train'])
  np.testing.assert_allclose(task.inputs['tabular'].mean, train['tabular'].mean(0), rtol=1e-4)
