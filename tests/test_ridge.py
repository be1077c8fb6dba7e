"""The closed-form head (`train.solver='ridge'`, medjax/train/ridge.py)."""
import json
import logging

import numpy as np
import pytest
from sklearn.linear_model import RidgeClassifier

from medjax import calibration, evaluate
from medjax import config as config_lib
from medjax.config import ConfigError
from medjax.train import ridge, setup
from tests.conftest import small_config


@pytest.mark.parametrize('examples, features', [(40, 12), (12, 30)])
@pytest.mark.parametrize('class_weight', [None, 'balanced'])
def test_the_ridge_path_is_scikit_learns_ridge_classifier(examples, features, class_weight):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(examples, features)) * rng.uniform(0.1, 10.0, features) + 3.0
  labels = np.minimum(np.arange(examples) % 4, 2)  # class 2 twice as common as 0 and 1
  weights = None if class_weight is None else (examples / (3 * np.bincount(labels)))[labels]
  path = ridge.RidgePath(x, ridge.indicator_targets(labels, _Task3()), weights)
  standardised = (x - x.mean(0)) / x.std(0)
  for alpha in (0.01, 1.0, 100.0):
    kernel, bias = path.head(alpha)
    reference = RidgeClassifier(alpha=alpha, solver='svd', class_weight=class_weight).fit(
        standardised, labels)
    np.testing.assert_allclose(x @ kernel + bias, reference.decision_function(standardised),
                               atol=1e-8)


class _Task3:
  multilabel, num_classes = False, 3


@pytest.mark.parametrize('weighted', [False, True])
def test_leave_one_out_scores_are_the_heads_fitted_without_each_example(weighted):
  rng = np.random.default_rng(2)
  x = rng.normal(size=(25, 6)) * rng.uniform(0.5, 4.0, 6) + 1.0
  labels = np.arange(25) % 3
  targets = ridge.indicator_targets(labels, _Task3())
  weights = rng.uniform(0.5, 2.0, 25) if weighted else np.ones(25)
  path = ridge.RidgePath(x, targets, weights if weighted else None)
  design = np.concatenate([np.ones((25, 1)), x / path.scale], 1)  # the standardisation kept
  for alpha in (0.1, 10.0):
    penalty = alpha * np.diag([0.0] + [1.0] * 6)  # the intercept unpenalised
    expected = []
    for i in range(25):
      rest = np.arange(25) != i
      weighted_rest = design[rest].T * weights[rest]
      coefficients = np.linalg.solve(weighted_rest @ design[rest] + penalty,
                                     weighted_rest @ targets[rest])
      expected.append(design[i] @ coefficients)
    np.testing.assert_allclose(path.leave_one_out_scores(alpha), expected, atol=1e-8)


def _rocket_ridge_config(data_dir, data='ucr/Shapes', **train):
  config = small_config('rocket', data=data)
  config.data.data_dir = str(data_dir)
  config.train.solver = 'ridge'
  config.train.select_metric = 'loss'
  config.train.update(train)
  return config


def test_ridge_fits_the_head_and_keeps_the_alpha_best_on_validation(three_shapes, tmp_path):
  experiment = setup.build_experiment(_rocket_ridge_config(three_shapes))
  summary = ridge.train(experiment, tmp_path)
  logged = [json.loads(line) for line in (tmp_path / 'logs' / 'metrics.jsonl').open()]
  losses = {r['val/ridge_alpha']: r['val/loss'] for r in logged}
  assert len(losses) == len(experiment.config.train.ridge_alphas) > 1
  assert summary['ridge_alpha'] == min(losses, key=losses.get)
  assert summary['best_validation'] == pytest.approx(min(losses.values()))
  assert summary['ridge_alpha_at_grid_edge'] == (summary['ridge_alpha'] in (min(losses),
                                                                            max(losses)))
  # The kept checkpoint's logits on the training split are the ridge regression's
  # predictions on the encoder's features (its standardisation folded into the head),
  # divided by the temperature of least validation loss.
  state, step, _ = evaluate.restore_checkpoint(experiment, tmp_path)
  assert step == summary['best_step']
  features, labels = ridge._training_features(experiment, experiment.state)
  kernel, bias = ridge.RidgePath(
      features, ridge.indicator_targets(labels, experiment.dataset.task)).head(
          summary['ridge_alpha'])
  _, outputs = evaluate.evaluate(experiment, state, 'train')
  kept = outputs['mask'] > 0
  np.testing.assert_allclose(outputs['logits'][kept] * summary['ridge_temperature'],
                             features @ kernel + bias, atol=1e-3)
  val_metrics, val = evaluate.evaluate(experiment, state, 'val')
  # the logged validation loss is the kept (temperature-divided) head's
  assert val_metrics['loss'] == pytest.approx(summary['best_validation'], rel=1e-4)
  val = {key: value[val['mask'] > 0] for key, value in val.items()}
  assert calibration.fit_temperature(val['logits'], val['label'],
                                     experiment.dataset.task) == pytest.approx(1.0, abs=0.02)
  assert np.mean(np.argmax(outputs['logits'][kept], -1) == labels) > 0.9
  # Fitted already: the same summary, nothing refitted.
  assert ridge.train(experiment, tmp_path) == summary


def test_a_refitted_ridge_trains_on_validation_too_and_validates_by_leave_one_out(
    three_shapes, tmp_path):
  config = _rocket_ridge_config(three_shapes, ridge_alphas=(0.1, 10.0, 1000.0))
  config.data.refit = True
  config.explain.num_images, config.eval.bootstrap_resamples = 0, 50
  experiment = setup.build_experiment(config)
  assert sorted(experiment.dataset.sources) == ['test', 'train']
  assert len(experiment.dataset.sources['train']) == 60  # all of TRAIN
  summary = ridge.train(experiment, tmp_path)
  logged = [json.loads(line) for line in (tmp_path / 'logs' / 'metrics.jsonl').open()]
  losses = {r['leave_one_out/ridge_alpha']: r['leave_one_out/loss'] for r in logged}
  assert summary['ridge_alpha'] == min(losses, key=losses.get)
  # The kept head's scores are the ridge regression's over its leave-one-out temperature.
  features, labels = ridge._training_features(experiment, experiment.state)
  path = ridge.RidgePath(features, ridge.indicator_targets(labels, experiment.dataset.task))
  temperature = calibration.fit_temperature(path.leave_one_out_scores(summary['ridge_alpha']),
                                            labels, experiment.dataset.task)
  assert summary['ridge_temperature'] == pytest.approx(temperature, rel=1e-6)
  state, _, _ = evaluate.restore_checkpoint(experiment, tmp_path)
  result = evaluate.evaluate_checkpoint(experiment, tmp_path, 'test')
  assert result['calibration']['fitted_on'] == 'none' and result['best_validation'] == (
      summary['best_validation'])
  with pytest.raises(ValueError, match='there is no val split to evaluate: with data.refit'):
    evaluate.evaluate(experiment, state, 'val')


def test_ridge_weights_each_example_by_its_class(three_shapes, tmp_path):
  experiment = setup.build_experiment(_rocket_ridge_config(
      three_shapes, data='ucr/Skewed', class_weights='balanced', ridge_alphas=(1.0,)))
  summary = ridge.train(experiment, tmp_path)
  state, _, _ = evaluate.restore_checkpoint(experiment, tmp_path)
  features, labels = ridge._training_features(experiment, experiment.state)
  counts = np.bincount(labels.astype(int))
  assert counts.max() >= 3 * counts.min()
  targets = ridge.indicator_targets(labels, experiment.dataset.task)
  kernel, bias = ridge.RidgePath(features, targets, (len(labels) / (3 * counts))[
      labels.astype(int)]).head(1.0)
  _, outputs = evaluate.evaluate(experiment, state, 'train')
  logits = outputs['logits'][outputs['mask'] > 0] * summary['ridge_temperature']
  np.testing.assert_allclose(logits, features @ kernel + bias, atol=1e-3)
  unweighted = ridge.RidgePath(features, targets).head(1.0)
  assert np.abs(logits - (features @ unweighted[0] + unweighted[1])).max() > 0.01


def test_ridge_says_when_the_best_alpha_is_at_the_edge_of_its_grid(three_shapes, tmp_path,
                                                                  caplog):
  experiment = setup.build_experiment(_rocket_ridge_config(three_shapes,
                                                           ridge_alphas=(0.1, 10.0)))
  with caplog.at_level(logging.WARNING):
    summary = ridge.train(experiment, tmp_path)
  assert summary['ridge_alpha_at_grid_edge']
  assert f"{summary['ridge_alpha']:g}, is at the edge of the grid (0.1 ... 10)" in caplog.text


@pytest.mark.parametrize('train, message', [
    ({'ema': True}, "train.ema=True needs train.solver='gradient'"),
    ({'ridge_alphas': (0.0, 1.0)}, 'must be positive'),
    ({'solver': 'newton'}, "train.solver='newton' is not one of"),
])
def test_ridge_settings_are_refused_with_the_config(train, message):
  config = small_config('rocket', data='ucr/ECG5000')
  config.train.update({'solver': 'ridge', **train})
  with pytest.raises(ConfigError, match=message):
    config_lib.validate(config)


def test_ridge_refuses_an_encoder_with_parameters(three_shapes):
  config = _rocket_ridge_config(three_shapes)
  config.model.name = 'resnet1d'
  config_lib.validate(config)
  with pytest.raises(ConfigError, match='parameters before it'):
    setup.build_experiment(config)


def test_ridge_refuses_more_features_than_it_holds_and_writes_nothing(three_shapes, tmp_path,
                                                                      monkeypatch):
  experiment = setup.build_experiment(_rocket_ridge_config(three_shapes))
  monkeypatch.setattr(ridge, 'MAX_FEATURE_VALUES', 100)
  with pytest.raises(ValueError, match="use train.solver='gradient'"):
    ridge.train(experiment, tmp_path / 'run')
  assert not (tmp_path / 'run').exists()
