"""The AAMI beat scores and the bootstrap over records."""
import ml_collections
import numpy as np
import pytest
from sklearn import metrics as skm

from medjax import clinical
from medjax.scores import aami

EVAL = ml_collections.ConfigDict(dict(bootstrap_resamples=200, bootstrap_seed=0,
                                      confidence=0.95))


def _one_hot(predicted, k=5):
  return np.eye(k)[predicted]


def test_aami_per_class_figures_and_jkappa_by_hand():
  labels = np.array([0, 0, 0, 0, 1, 1, 2, 2, 3, 4])
  predicted = np.array([0, 0, 1, 2, 1, 0, 2, 2, 0, 4])
  values = aami.headline(labels, _one_hot(predicted))
  # S (1): 1 of 2 found, 1 of 2 calls right; V (2): 2 of 2 found, 2 of 3 calls right.
  assert values['se_S'] == 0.5 and values['ppv_S'] == 0.5
  assert values['se_V'] == 1.0 and values['ppv_V'] == pytest.approx(2 / 3)
  kappa = skm.cohen_kappa_score(labels, predicted)
  assert values['kappa'] == pytest.approx(kappa)
  assert values['jkappa'] == pytest.approx(kappa / 2 + (0.5 + 0.5 + 1 + 2 / 3) / 8)
  per_class = aami.per_class(aami.confusion_matrix(labels, predicted))
  assert per_class['N']['fpr'] == pytest.approx(2 / 6)  # 2 of the 6 non-N beats called N
  assert per_class['Q'] == {'se': 1.0, 'ppv': 1.0, 'fpr': 0.0, 'count': 1}


def test_a_perfect_classifier_scores_one():
  labels = np.array([0, 1, 2, 3, 4, 0, 1, 2])
  assert aami.headline(labels, _one_hot(labels))['jkappa'] == pytest.approx(1.0)


def test_the_bootstrap_resamples_whole_records():
  rng = np.random.default_rng(0)
  groups = np.repeat(np.arange(10), 50)
  seen = []

  def statistic(indices):
    seen.append(indices)
    return {'mean': float(np.mean(indices))}
  clinical.group_bootstrap(groups, statistic, num_resamples=20, seed=0)
  for indices in seen:  # every resample is a union of whole records, with repeats
    counts = np.bincount(groups[indices], minlength=10)
    assert np.all(counts % 50 == 0) and counts.sum() == 500

  # Beats of one record alike: the record bootstrap gives the wider, honest interval.
  values = rng.normal(size=10)[groups] + 0.01 * rng.normal(size=500)
  mean = lambda idx: {'mean': float(values[idx].mean())}  # noqa: E731
  by_record = clinical.group_bootstrap(groups, mean, num_resamples=300, seed=0)['mean']
  by_beat = clinical.stratified_bootstrap(np.zeros(500), mean, num_resamples=300, seed=0)['mean']
  assert by_record[1] - by_record[0] > 3 * (by_beat[1] - by_beat[0])


def test_the_aami_report_has_record_intervals():
  rng = np.random.default_rng(1)
  labels = rng.integers(0, 5, 300)
  probs = _one_hot(np.where(rng.random(300) < 0.8, labels, rng.integers(0, 5, 300)))
  report = aami.report(labels, probs, np.repeat(np.arange(6), 50), EVAL)
  assert report['bootstrap'] == 'records' and report['num_groups'] == 6
  jkappa = report['metrics']['jkappa']
  assert jkappa['ci'][0] <= jkappa['value'] <= jkappa['ci'][1]
  assert report['metrics']['accuracy']['value'] == pytest.approx(
      np.mean(probs.argmax(-1) == labels))
