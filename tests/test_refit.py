"""Refitting a chosen recipe on the training and validation data (`data.refit`)."""
import json
import re

import jax
import numpy as np
import pytest

from medjax import config as config_lib
from medjax import evaluate
from medjax.config import ConfigError
from medjax.data import sources
from medjax.train import loop, setup
from tests.conftest import small_config


class _OnDisk:
  """A source that is not held in memory (as a TFDS ArrayRecord source)."""

  def __init__(self, arrays):
    self.arrays = arrays

  def __len__(self):
    return len(self.arrays['index'])

  def __getitem__(self, index):
    return {key: values[index] for key, values in self.arrays.items()}


def _part(start, count):
  return {'index': np.arange(count), 'value': np.arange(start, start + count) * 10}


@pytest.mark.parametrize('in_memory', [True, False])
def test_concatenated_sources_read_through_each_part_with_positions_as_indices(in_memory):
  make = sources.InMemorySource if in_memory else _OnDisk
  whole = sources.concatenated([make(_part(0, 3)), make(_part(3, 2))])
  assert len(whole) == 5
  batch = sources.read_batch(whole, [4, 0, 3])
  np.testing.assert_array_equal(batch['value'], [40, 0, 30])
  np.testing.assert_array_equal(batch['index'], [4, 0, 3])  # each example's own position
  with pytest.raises(IndexError):
    whole[5]


def _shapes_config(data_dir, **train):
  config = small_config('linear', data='ucr/Shapes')
  config.data.data_dir = str(data_dir)
  config.data.refit = True
  config.explain.num_images = 0
  config.eval.bootstrap_resamples = 50
  config.train.update(train)
  return config


def test_a_refit_keeps_its_last_step_of_the_longer_schedule_it_is_given(three_shapes, tmp_path):
  """A refit of 4 steps of an 8-step schedule is the 8-step refit at step 4: the
  schedule's length is optim.schedule_steps, the kept checkpoint the last step."""
  short = _shapes_config(three_shapes, steps=4)
  short.optim.schedule_steps = 8
  short.eval.temperature = 1.5
  config_lib.validate(short)
  experiment = setup.build_experiment(short)
  assert sorted(experiment.dataset.sources) == ['test', 'train']
  assert len(experiment.dataset.sources['train']) == 60  # TRAIN's validation part included
  summary = loop.train(experiment, tmp_path / 'short')
  assert (summary['best_step'], summary['best_validation']) == (4, None)
  full = setup.build_experiment(_shapes_config(three_shapes, steps=8, checkpoint_every=4,
                                               checkpoints_to_keep=2))
  loop.train(full, tmp_path / 'full')
  kept, _, _ = evaluate.restore_checkpoint(experiment, tmp_path / 'short')
  at_four, _, _ = evaluate.restore_checkpoint(full, tmp_path / 'full', '4')
  for a, b in zip(jax.tree.leaves(kept.params), jax.tree.leaves(at_four.params)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  last, _, _ = evaluate.restore_checkpoint(full, tmp_path / 'full')
  assert any(not np.allclose(a, b) for a, b in zip(jax.tree.leaves(kept.params),
                                                   jax.tree.leaves(last.params)))
  # Evaluation has no validation split to fit on: the given temperature is applied.
  result = evaluate.evaluate_checkpoint(experiment, tmp_path / 'short', 'test')
  assert result['calibration']['temperature'] == 1.5
  assert result['calibration']['fitted_on'] == 'eval.temperature'
  stored = json.loads((tmp_path / 'short' / 'calibration.json').read_text())
  assert stored['temperature'] == 1.5 and stored['fitted_on'] == 'eval.temperature'


def test_a_binary_refit_decides_at_the_threshold_it_is_given(three_shapes, tmp_path):
  config = small_config('linear', data='ucr/Two')
  config.data.data_dir = str(three_shapes)
  config.data.refit = True
  config.explain.num_images = 0
  with pytest.raises(ConfigError, match=re.escape(
      'the validation split, which a refit trains on: give the threshold '
      '(eval.operating_threshold)')):
    setup.build_experiment(config)
  config.eval.operating_threshold = 0.3
  config.train.steps = 2
  experiment = setup.build_experiment(config)
  loop.train(experiment, tmp_path)
  result = evaluate.evaluate_checkpoint(experiment, tmp_path, 'test')
  assert result['operating_point']['threshold'] == 0.3
  assert result['operating_point']['chosen_on'] == 'eval.operating_threshold'
  probs = np.loadtxt(tmp_path / 'eval' / 'test' / 'predictions.csv', delimiter=',',
                     skiprows=1, usecols=3)
  assert result['counts']['tp'] + result['counts']['fp'] == int(np.sum(probs >= 0.3))
  assert 'Operating point: given (eval.operating_threshold) at threshold 0.3000' in (
      tmp_path / 'eval' / 'test' / 'report.md').read_text()
  # An ensemble of refits decides at the mean of its members' thresholds.
  other = config.copy_and_resolve_references()
  other.eval.operating_threshold = 0.5
  members = [(experiment, tmp_path), (setup.build_experiment(other), tmp_path)]
  ensemble = evaluate.evaluate_ensemble(members, tmp_path / 'ensemble')
  assert ensemble['operating_point']['threshold'] == pytest.approx(0.4)
  assert ensemble['best_validation'] is None


def test_refit_settings_are_checked_with_the_config():
  config = small_config('resnet1d', data='ucr/ECG5000')
  config.data.refit, config.data.cv_folds = True, 5
  with pytest.raises(ConfigError, match='data.refit trains on every fold'):
    config_lib.validate(config)
  config = small_config('resnet1d', data='ucr/ECG5000')
  config.optim.schedule_steps = config.train.steps - 1
  with pytest.raises(ConfigError, match='optim.schedule_steps=5 is shorter than train.steps=6'):
    config_lib.validate(config)
  config.optim.schedule_steps, config.eval.temperature = 0, -1.0
  with pytest.raises(ConfigError, match=r'eval.temperature=-1.0 must be >= 0'):
    config_lib.validate(config)
