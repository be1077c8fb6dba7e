"""Test-time augmentation: the mean of the views' logits, deterministic; no views is
plain evaluation; a view no input has is a config error."""
import numpy as np
import pytest

from medjax import config as config_lib
from medjax import evaluate, parallel, predict, tta
from medjax.config import ConfigError
from medjax.data import Dataset, pipeline
from medjax.data.task import InputSpec, Task
from medjax.train import setup
from tests.conftest import small_config


@pytest.fixture(scope='module')
def experiments(breast):
  """The same untrained CNN evaluated without and with test-time views."""
  built = {}
  for views in ('', 'hflip', 'hflip,shift'):
    config = small_config('cnn')
    config.eval.tta = views
    built[views] = setup.build_experiment(config, breast)
  return built


def _first_batch_logits(experiment, transform=lambda x: x):
  batch = next(iter(pipeline.eval_batches(experiment.dataset.sources['val'],
                                          experiment.dataset.task, batch_size=64)))
  batch = {**batch, 'image': transform(batch['image'])}
  outputs = experiment.eval_step(experiment.state,
                                 parallel.to_global(setup.device_batch(batch), experiment.mesh))
  return np.asarray(outputs['logits'])


def test_no_views_is_plain_evaluation(experiments):
  plain = experiments['']
  _, outputs = evaluate.evaluate(plain, plain.state, 'val')
  np.testing.assert_array_equal(outputs['logits'][:64], _first_batch_logits(plain))


def test_views_average_the_logits_of_the_transformed_inputs(experiments):
  flipped = experiments['hflip']
  _, outputs = evaluate.evaluate(flipped, flipped.state, 'val')
  expected = (_first_batch_logits(flipped) +
              _first_batch_logits(flipped, lambda x: x[:, :, ::-1])) / 2
  np.testing.assert_allclose(outputs['logits'][:64], expected, rtol=1e-5, atol=1e-6)
  probs = np.exp(expected) / np.exp(expected).sum(-1, keepdims=True)
  np.testing.assert_allclose(outputs['probs'][:64], probs, rtol=1e-4, atol=1e-6)
  _, plain = evaluate.evaluate(experiments[''], experiments[''].state, 'val')
  assert not np.allclose(outputs['logits'], plain['logits'])


def test_prediction_averages_the_same_views(experiments):
  for views, expected in (('', lambda e: _first_batch_logits(e)),
                          ('hflip', lambda e: (_first_batch_logits(e) + _first_batch_logits(
                              e, lambda x: x[:, :, ::-1])) / 2)):
    experiment = experiments[views]
    batch = next(iter(pipeline.eval_batches(experiment.dataset.sources['val'],
                                            experiment.dataset.task, batch_size=64)))
    probs = predict._probabilities(experiment, experiment.state,
                                   {'image': batch['image'][:5]}, temperature=1.0)
    logits = expected(experiment)[:5]
    np.testing.assert_allclose(probs, np.exp(logits) / np.exp(logits).sum(-1, keepdims=True),
                               rtol=1e-4, atol=1e-6)


def test_views_are_deterministic(experiments):
  many = experiments['hflip,shift']
  first = evaluate.evaluate(many, many.state, 'val')
  second = evaluate.evaluate(many, many.state, 'val')
  assert first[0] == second[0]
  np.testing.assert_array_equal(first[1]['probs'], second[1]['probs'])


def test_shifted_fills_the_gap():
  values = np.arange(1, 6, dtype=np.float32)[None]
  np.testing.assert_array_equal(tta.shifted(values, 1, 2, 0.0), [[0, 0, 1, 2, 3]])
  np.testing.assert_array_equal(tta.shifted(values, 1, -1, -1.0), [[2, 3, 4, 5, -1]])


def test_views_that_do_not_apply_are_config_errors():
  config = small_config('cnn')
  config.eval.tta = 'rotate'
  with pytest.raises(ConfigError, match="unknown views \\['rotate'\\]"):
    config_lib.validate(config)
  config = small_config('resnet1d')
  config.eval.tta = 'hflip'
  task = Task('beats', 'multiclass', ('a', 'b'), (1, 1),
              {'signal': InputSpec('signal', (64, 1), sampling_rate=100)})
  with pytest.raises(ConfigError, match="no input of beats has the view 'hflip'"):
    setup.build_experiment(config, Dataset(task=task, sources={}))
  signal_views = tta.views('shift', task)
  beats = {'signal': np.arange(64, dtype=np.float32).reshape(1, 64, 1), 'label': np.zeros(1)}
  shifted = [view(beats)['signal'][0, :, 0] for view in signal_views]
  assert len(shifted) == 3 and shifted[1][0] == 1 and shifted[2][0] == 0 and shifted[2][1] == 0
