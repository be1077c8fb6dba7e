"""`--mode=eval --ensemble=W1,W2,...`: several workdirs evaluated as one model."""
import json
import shutil
import types

import numpy as np
import pytest

from medjax import evaluate
from tests.conftest import TINY, run_cli


def _test_metrics(workdir, name='test'):
  return json.loads((workdir / 'eval' / name / 'metrics.json').read_text())


@pytest.mark.parametrize('copies', [1, 2])
def test_an_ensemble_of_one_model_equals_that_model(trained, tmp_path, copies):
  members = [trained]
  for index in range(1, copies):
    members.append(tmp_path / f'copy{index}')
    shutil.copytree(trained, members[-1])
  out = tmp_path / 'ensemble'
  result = run_cli('--mode=eval', f'--workdir={out}',
                   f'--ensemble={",".join(str(m) for m in members)}')
  assert result.returncode == 0, result.stderr[-3000:]
  single, ensemble = _test_metrics(trained), _test_metrics(out)
  assert len(ensemble['ensemble']) == copies and ensemble['model'] == '+'.join(['cnn'] * copies)
  assert ensemble['num_params'] == copies * single['num_params']
  for key in ('accuracy', 'auc', 'num_examples', 'metrics', 'counts', 'operating_point'):
    assert ensemble[key] == single[key], key
  assert ((out / 'eval' / 'test' / 'predictions.csv').read_text() ==
          (trained / 'eval' / 'test' / 'predictions.csv').read_text())
  assert json.loads((out / 'operating_point.json').read_text()) == single['operating_point']
  assert json.loads((out / 'ensemble.json').read_text())['members'] == [str(m) for m in members]
  # Its validation figure, for a sweep to compare it on, is the member's (temperature
  # scaling keeps a binary task's ranking).
  assert ensemble['select_metric'] == single['select_metric'] == 'auc'
  assert ensemble['best_validation'] == pytest.approx(single['best_validation'], abs=1e-3)


def test_an_ensemble_of_unlike_models_averages_their_calibrated_probabilities(trained,
                                                                            tmp_path):
  linear = tmp_path / 'linear'
  result = run_cli(*TINY, '--config.model.name=linear', '--config.explain.num_images=0',
                   f'--workdir={linear}')
  assert result.returncode == 0, result.stderr[-3000:]
  out = tmp_path / 'ensemble'
  result = run_cli('--mode=eval', f'--workdir={out}', f'--ensemble={trained},{linear}')
  assert result.returncode == 0, result.stderr[-3000:]
  ensemble = _test_metrics(out)
  assert ensemble['model'] == 'cnn+linear'
  assert ensemble['num_params'] == (_test_metrics(trained)['num_params'] +
                                    _test_metrics(linear)['num_params'])
  tables = [np.loadtxt(run / 'eval' / 'test' / 'predictions.csv', delimiter=',', skiprows=1)
            for run in (trained, linear, out)]
  cnn_probs, linear_probs, mean_probs = (table[:, 2:] for table in tables)
  assert not np.allclose(cnn_probs, linear_probs, atol=1e-3)
  np.testing.assert_allclose(mean_probs, (cnn_probs + linear_probs) / 2, atol=1e-6)


def test_a_trained_run_is_evaluated_again_with_test_time_views(trained, tmp_path):
  out = tmp_path / 'flipped'
  result = run_cli('--mode=eval', f'--workdir={out}', f'--ensemble={trained}', '--tta=hflip')
  assert result.returncode == 0, result.stderr[-3000:]
  plain, flipped = _test_metrics(trained), _test_metrics(out)
  assert flipped['num_examples'] == plain['num_examples']
  assert ((out / 'eval' / 'test' / 'predictions.csv').read_text() !=
          (trained / 'eval' / 'test' / 'predictions.csv').read_text())
  assert json.loads((trained / 'config.json').read_text())['eval']['tta'] == ''


def test_a_trained_run_is_decided_again_at_a_given_threshold_and_temperature(trained,
                                                                              tmp_path):
  out = tmp_path / 'decided'
  result = run_cli('--mode=eval', f'--workdir={out}', f'--ensemble={trained}',
                   '--operating_threshold=0.9', '--temperature=2.5')
  assert result.returncode == 0, result.stderr[-3000:]
  plain, decided = _test_metrics(trained), _test_metrics(out)
  assert decided['ensemble'][0]['temperature'] == 2.5 != plain['calibration']['temperature']
  assert plain['operating_point']['chosen_on'] == 'val'
  assert decided['operating_point']['threshold'] == 0.9
  assert decided['operating_point']['chosen_on'] == 'eval.operating_threshold'
  assert decided['auc'] == plain['auc']
  stored = json.loads((trained / 'config.json').read_text())
  positive = json.loads((trained / 'task.json').read_text())['label_names'].index(
      stored['eval']['positive_class'])
  probs = np.loadtxt(out / 'eval' / 'test' / 'predictions.csv', delimiter=',',
                     skiprows=1)[:, 2 + positive]
  assert decided['counts']['tp'] + decided['counts']['fp'] == np.sum(probs >= 0.9)


@pytest.mark.parametrize('mode, flag, message', [
    ('eval', '--tta=spin', "eval.tta: unknown views ['spin']"),
    ('train', '--tta=hflip', '--tta works with --mode=eval/predict'),
    ('eval', '--operating_threshold=1.0', '--operating_threshold=1.0: must be in (0, 1)'),
    ('train', '--temperature=2', '--temperature works with --mode=eval'),
])
def test_bad_evaluation_flags_are_refused(trained, tmp_path, mode, flag, message):
  out = tmp_path / 'out'
  source = f'--ensemble={trained}' if mode == 'eval' else '--config=configs/breast_cnn.py'
  result = run_cli(f'--mode={mode}', f'--workdir={out}', source, flag)
  assert result.returncode == 2, result.stderr[-3000:]
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and message in lines[0], lines
  assert not out.exists()


@pytest.mark.parametrize('key', ['index', 'label', 'group'])
def test_members_with_other_examples_are_refused(key):
  def outputs(**changed):
    base = {'index': np.arange(4), 'label': np.array([0, 1, 0, 1]), 'mask': np.ones(4),
            'group': np.array([100, 100, 101, 101]), 'probs': np.full((4, 2), 0.5, np.float32)}
    return {**base, **changed}
  task = types.SimpleNamespace(multilabel=False)
  mean = evaluate._mean_of_members([outputs(), outputs(probs=np.eye(2)[[0, 1, 1, 0]])], task)
  np.testing.assert_allclose(mean['probs'],
                             [[0.75, 0.25], [0.25, 0.75], [0.25, 0.75], [0.75, 0.25]])
  other = {'index': np.array([0, 1, 3, 2]), 'label': np.array([0, 1, 1, 0]),
           'group': np.array([100, 101, 100, 101])}[key]
  with pytest.raises(ValueError, match=f'their {key} values differ'):
    evaluate._mean_of_members([outputs(), outputs(**{key: other})], task)
