"""Clinical metrics against scikit-learn and brute-force references."""
import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from medjax import clinical


def _data(seed, n=200, ties=False, prevalence=0.3):
  rng = np.random.default_rng(seed)
  labels = (rng.random(n) < prevalence).astype(int)
  scores = np.clip(rng.normal(0.35 + 0.3 * labels, 0.2), 0, 1)
  if ties:
    scores = np.round(scores, 1)  # many tied scores across classes
  return labels, scores


CASES = [dict(seed=0), dict(seed=1, ties=True), dict(seed=2, prevalence=0.05),
         dict(seed=3, n=31, ties=True)]


@pytest.mark.parametrize('case', CASES)
def test_aucs_match_scikit_learn(case):
  labels, scores = _data(**case)
  assert clinical.roc_auc(labels, scores) == pytest.approx(skm.roc_auc_score(labels, scores))
  assert clinical.pr_auc(labels, scores) == pytest.approx(
      skm.average_precision_score(labels, scores))


@pytest.mark.parametrize('case', CASES)
@pytest.mark.parametrize('threshold', [0.2, 0.5, 0.71, 1.01])  # 1.01: no case called positive
def test_threshold_metrics_match_scikit_learn(case, threshold):
  labels, scores = _data(**case)
  predicted = (scores >= threshold).astype(int)
  got = clinical.threshold_metrics(labels, scores, threshold)
  assert got['accuracy'] == pytest.approx(skm.accuracy_score(labels, predicted))
  assert got['balanced_accuracy'] == pytest.approx(skm.balanced_accuracy_score(labels, predicted))
  assert got['sensitivity'] == pytest.approx(skm.recall_score(labels, predicted))
  assert got['specificity'] == pytest.approx(skm.recall_score(labels, predicted, pos_label=0))
  assert got['ppv'] == pytest.approx(skm.precision_score(labels, predicted, zero_division=np.nan),
                                     nan_ok=True)
  assert got['npv'] == pytest.approx(
      skm.precision_score(labels, predicted, pos_label=0, zero_division=np.nan), nan_ok=True)
  assert got['f1'] == pytest.approx(skm.f1_score(labels, predicted))
  assert got['mcc'] == pytest.approx(skm.matthews_corrcoef(labels, predicted))
  assert got['tp'] + got['fp'] + got['tn'] + got['fn'] == len(labels)


@pytest.mark.parametrize('case', CASES)
def test_youden_threshold_maximises_j_over_all_cut_points(case):
  labels, scores = _data(**case)
  threshold = clinical.operating_threshold(labels, scores, 'youden')
  def youden(t):
    m = clinical.threshold_metrics(labels, scores, t)
    return m['sensitivity'] + m['specificity'] - 1
  best = max(youden(t) for t in np.unique(scores))
  assert youden(threshold) == pytest.approx(best)


def test_the_threshold_splits_the_gap_between_the_classes():
  """A separated validation split: the cut lies midway between the classes' scores,
  not on the lowest positive score."""
  labels = np.array([0, 0, 0, 1, 1, 1])
  scores = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
  for rule, target in (('youden', 0.0), ('sensitivity', 1.0), ('specificity', 1.0)):
    assert clinical.operating_threshold(labels, scores, rule, target) == pytest.approx(0.5)


@pytest.mark.parametrize('target', [0.8, 0.9, 0.95])
def test_target_sensitivity_and_specificity_are_reached(target):
  labels, scores = _data(0)
  threshold = clinical.operating_threshold(labels, scores, 'sensitivity', target)
  assert clinical.threshold_metrics(labels, scores, threshold)['sensitivity'] >= target
  # ... and it is below the highest score cut reaching it, the midpoint of the gap under
  # that cut: the cut above the cut misses the target.
  cut = scores[scores > threshold].min()
  below = scores[scores < threshold].max()
  assert threshold == pytest.approx((cut + below) / 2)
  assert clinical.threshold_metrics(labels, scores, cut)['sensitivity'] >= target
  above = scores[scores > cut]
  if above.size:
    assert clinical.threshold_metrics(labels, scores, above.min())['sensitivity'] < target
  threshold = clinical.operating_threshold(labels, scores, 'specificity', target)
  assert clinical.threshold_metrics(labels, scores, threshold)['specificity'] >= target


def test_one_class_split_gives_nan_with_a_warning():
  labels = np.zeros(10, int)
  scores = np.linspace(0, 1, 10)
  with pytest.warns(UserWarning, match='only class'):
    assert np.isnan(clinical.roc_auc(labels, scores))
  with pytest.warns(UserWarning):
    assert np.isnan(clinical.delong_test(labels, scores, scores)['p_value'])
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    metrics = clinical.threshold_metrics(labels, scores, 0.5)
  assert np.isnan(metrics['sensitivity']) and metrics['specificity'] == 0.5


def test_calibration_metrics():
  labels, scores = _data(4)
  assert clinical.brier_score(labels, scores) == pytest.approx(
      np.mean((scores - labels)**2))
  # Perfectly calibrated within bins: each bin's mean score equals its positive rate.
  perfect_scores = np.repeat([0.1, 0.5, 0.9], 10)
  perfect_labels = np.concatenate([[1] + [0] * 9, [1] * 5 + [0] * 5, [1] * 9 + [0]])
  assert clinical.expected_calibration_error(perfect_labels, perfect_scores) == pytest.approx(0)
  assert clinical.expected_calibration_error(np.zeros(4), np.full(4, 0.8)) == pytest.approx(0.8)


def _brute_force_components(labels, scores):
  positives, negatives = scores[labels == 1], scores[labels == 0]
  psi = (positives[:, None] > negatives[None, :]) + 0.5 * (positives[:, None] == negatives[None, :])
  return psi.mean(), psi.mean(1), psi.mean(0)


@pytest.mark.parametrize('case', CASES)
def test_delong_components_equal_mann_whitney_brute_force(case):
  labels, scores = _data(**case)
  auc, v_pos, v_neg = clinical.delong_components(labels, scores)
  want_auc, want_pos, want_neg = _brute_force_components(labels, scores)
  assert auc == pytest.approx(want_auc) and auc == pytest.approx(skm.roc_auc_score(labels, scores))
  np.testing.assert_allclose(v_pos, want_pos)
  np.testing.assert_allclose(v_neg, want_neg)
  # The Mann-Whitney U statistic gives the same AUC.
  u = stats.mannwhitneyu(scores[labels == 1], scores[labels == 0]).statistic
  assert auc == pytest.approx(u / ((labels == 1).sum() * (labels == 0).sum()))


def test_delong_test_against_an_explicit_variance_computation():
  labels, scores_a = _data(5, n=120)
  rng = np.random.default_rng(6)
  scores_b = np.clip(scores_a + rng.normal(0, 0.15, len(scores_a)), 0, 1)
  result = clinical.delong_test(labels, scores_a, scores_b)
  _, pos_a, neg_a = _brute_force_components(labels, scores_a)
  _, pos_b, neg_b = _brute_force_components(labels, scores_b)
  m, n = len(pos_a), len(neg_a)
  var = lambda x, y: np.sum((x - x.mean()) * (y - y.mean())) / (len(x) - 1)  # noqa: E731
  s = lambda pa, pb, na, nb: var(pa, pb) / m + var(na, nb) / n  # noqa: E731
  variance = (s(pos_a, pos_a, neg_a, neg_a) + s(pos_b, pos_b, neg_b, neg_b) -
              2 * s(pos_a, pos_b, neg_a, neg_b))
  z = (result['auc_a'] - result['auc_b']) / np.sqrt(variance)
  assert result['z'] == pytest.approx(z)
  assert result['p_value'] == pytest.approx(2 * stats.norm.sf(abs(z)))
  low, high = result['ci']
  assert low < result['difference'] < high
  assert (high - low) / 2 == pytest.approx(1.959964 * np.sqrt(variance), rel=1e-5)


def test_delong_of_identical_models_is_not_significant():
  labels, scores = _data(7)
  result = clinical.delong_test(labels, scores, scores)
  assert result['difference'] == 0 and result['p_value'] == 1.0


def test_stratified_bootstrap_is_reproducible_and_keeps_class_counts():
  labels, scores = _data(8)
  seen_counts = set()

  def statistic(indices):
    seen_counts.add(int(labels[indices].sum()))
    return {'auc': clinical.roc_auc(labels[indices], scores[indices])}

  first = clinical.stratified_bootstrap(labels, statistic, num_resamples=200, seed=3)
  second = clinical.stratified_bootstrap(labels, statistic, num_resamples=200, seed=3)
  other = clinical.stratified_bootstrap(labels, statistic, num_resamples=200, seed=4)
  assert first == second and first != other
  assert seen_counts == {int(labels.sum())}
  low, high = first['auc']
  assert low < clinical.roc_auc(labels, scores) < high


def test_published_worked_example_hanley_mcneil_1982():
  """Hanley & McNeil (Radiology 1982), Table 1: five-point ratings of 109 CT images
  (58 normal, 51 abnormal): published AUC 0.893 with standard error 0.032."""
  normal, abnormal = [33, 6, 6, 11, 2], [3, 2, 2, 11, 33]
  ratings = np.concatenate([np.repeat(np.arange(1, 6), normal),
                            np.repeat(np.arange(1, 6), abnormal)]).astype(float)
  labels = np.concatenate([np.zeros(58, int), np.ones(51, int)])
  auc, v_pos, v_neg = clinical.delong_components(labels, ratings)
  assert round(auc, 3) == 0.893
  q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)  # Hanley-McNeil's approximation
  hanley_mcneil_se = np.sqrt((auc * (1 - auc) + 50 * (q1 - auc**2) + 57 * (q2 - auc**2)) /
                             (51 * 58))
  assert round(hanley_mcneil_se, 3) == 0.032
  delong_se = np.sqrt(v_pos.var(ddof=1) / 51 + v_neg.var(ddof=1) / 58)
  assert delong_se == pytest.approx(hanley_mcneil_se, rel=0.1)  # two estimates of one SE
