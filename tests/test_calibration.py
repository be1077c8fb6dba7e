"""Temperature scaling: fitted on validation it minimises the NLL there, changes no
decision or ranking, and the workdir's eval and predict apply it."""
import json
import shutil

import numpy as np
import pytest
from sklearn import metrics as skm

from medjax import calibration, clinical
from medjax.data.task import InputSpec, Task
from tests.conftest import run_cli

IMAGE = {'image': InputSpec('image', (8, 8, 1))}
MULTICLASS = Task('toy', 'multiclass', ('a', 'b', 'c'), (1, 1, 1), IMAGE)
BINARY = Task('toy', 'binary', ('no', 'yes'), (1, 1), IMAGE)
MULTILABEL = Task('toy', 'multilabel', ('x', 'y'), (1, 1), IMAGE)


def _overconfident(task, count=4000, sharpness=3.0, seed=0):
  """Labels drawn from softmax(z) (sigmoid for multi-label), reported as sharpness * z:
  calibrated at T = sharpness."""
  rng = np.random.default_rng(seed)
  width = task.num_classes
  z = rng.normal(0, 1.5, (count, width))
  if task.multilabel:
    labels = (rng.uniform(size=z.shape) < 1 / (1 + np.exp(-z))).astype(int)
  else:
    probs = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    labels = np.array([rng.choice(width, p=p) for p in probs])
  return sharpness * z, labels


@pytest.mark.parametrize('task', [MULTICLASS, BINARY, MULTILABEL], ids=lambda t: t.kind)
def test_the_fitted_temperature_minimises_the_validation_nll(task):
  logits, labels = _overconfident(task)
  temperature = calibration.fit_temperature(logits, labels, task)
  assert temperature == pytest.approx(3.0, rel=0.1)
  best = calibration.negative_log_likelihood(logits, labels, task, temperature)
  for other in (1.0, temperature * 1.05, temperature / 1.05):
    assert best < calibration.negative_log_likelihood(logits, labels, task, other)
  summary = calibration.report(logits, labels, task, temperature, 'val')
  assert summary['after']['ece'] < summary['before']['ece'] / 2
  assert summary['after']['brier'] < summary['before']['brier']


def test_scaling_changes_no_decision_and_no_ranking():
  logits, labels = _overconfident(BINARY, count=500, seed=1)
  before = calibration.probabilities(logits, BINARY)
  after = calibration.probabilities(logits, BINARY, 2.7)
  assert not np.allclose(before, after)
  np.testing.assert_array_equal(before.argmax(-1), after.argmax(-1))
  assert skm.roc_auc_score(labels, after[:, 1]) == skm.roc_auc_score(labels, before[:, 1])
  logits, _ = _overconfident(MULTICLASS, count=500, seed=2)
  np.testing.assert_array_equal(calibration.probabilities(logits, MULTICLASS).argmax(-1),
                                calibration.probabilities(logits, MULTICLASS, 0.4).argmax(-1))


@pytest.mark.parametrize('task', [MULTICLASS, BINARY, MULTILABEL], ids=lambda t: t.kind)
def test_a_split_without_errors_leaves_the_temperature_at_one(task):
  """With every example right the NLL only falls as T -> 0: no temperature is fitted.
  One example on the wrong side makes the minimiser finite again."""
  logits, labels = _overconfident(task, count=300, seed=3)
  if task.multilabel:
    labels = (logits > 0).astype(int)
  else:
    labels = logits.argmax(-1)
  assert calibration.fit_temperature(logits, labels, task) == 1.0
  wrong = labels.copy()
  wrong[0] = 1 - wrong[0] if task.multilabel or task.kind == 'binary' else (wrong[0] + 1) % 3
  temperature = calibration.fit_temperature(logits, wrong, task)
  assert temperature < 1.0  # sharper than the logits, but not the search's bound
  assert temperature > float(np.exp(calibration._LOG_T_BOUNDS[0])) * 1.01


def test_the_ece_floor_is_the_ece_of_a_calibrated_model_and_falls_with_the_split_size():
  rng = np.random.default_rng(5)
  scores = rng.uniform(size=400)
  floor = clinical.ece_sampling_floor(scores)
  # The definition: the mean ECE of labels drawn from the scores themselves.
  drawn = [clinical.expected_calibration_error(rng.uniform(size=400) < scores, scores)
           for _ in range(400)]
  assert floor == pytest.approx(np.mean(drawn), rel=0.05)
  # Sampling noise: four times the examples, about half the floor.
  assert clinical.ece_sampling_floor(np.tile(scores, 4)) == pytest.approx(floor / 2, rel=0.15)
  # A model three times too sharp measures far above it.
  logits, labels = _overconfident(BINARY, count=400, seed=6)
  summary = calibration.report(logits, labels, BINARY, 1.0, 'val')
  assert summary['before']['ece'] > 3 * summary['before']['ece_floor']


def test_an_empty_split_is_refused():
  with pytest.raises(ValueError, match='empty split'):
    calibration.fit_temperature(np.zeros((0, 3)), np.zeros(0, int), MULTICLASS)


def test_eval_and_predict_apply_the_stored_temperature(trained, tmp_path):
  shutil.copytree(trained, tmp_path / 'run')
  trained = tmp_path / 'run'
  stored = json.loads((trained / calibration.CALIBRATION_FILE).read_text())
  metrics = json.loads((trained / 'eval' / 'test' / 'metrics.json').read_text())
  assert metrics['calibration']['temperature'] == stored['temperature'] != 1.0
  assert stored['fitted_on'] == 'val' and stored['step'] == metrics['step']
  # The reported probabilities are the calibrated ones ...
  assert metrics['metrics']['brier']['value'] == pytest.approx(
      metrics['calibration']['after']['brier'], abs=1e-6)
  assert metrics['metrics']['ece']['value'] == pytest.approx(
      metrics['calibration']['after']['ece'], abs=1e-6)
  # ... and predict divides the logits by the same temperature: halving it moves the
  # probabilities of the same image.
  import PIL.Image
  (tmp_path / 'in').mkdir()
  PIL.Image.fromarray(np.full((28, 28), 90, np.uint8)).save(tmp_path / 'in' / 'grey.png')

  def predicted():
    out = tmp_path / 'out.csv'
    result = run_cli('--mode=predict', f'--workdir={trained}', f'--input={tmp_path / "in"}',
                     f'--output={out}')
    assert result.returncode == 0, result.stderr[-2000:]
    return float(out.read_text().splitlines()[1].split(',')[3])

  as_stored = predicted()
  (trained / calibration.CALIBRATION_FILE).write_text(
      json.dumps({**stored, 'temperature': stored['temperature'] / 2}))
  assert predicted() != pytest.approx(as_stored, abs=1e-6)
