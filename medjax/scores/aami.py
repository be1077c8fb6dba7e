"""ECG beat classification in the AAMI classes (ANSI/AAMI EC57; de Chazal et al. 2004).

Per class (N, S, V, F, Q): sensitivity Se = TP / (TP + FN), positive predictivity
+P = TP / (TP + FP) and false positive rate FPR = FP / (FP + TN), one class against
the rest, from the argmax decision. The jκ index (Mondéjar-Guerra et al. 2019) weighs
Cohen's κ and the j index of the two clinically important classes:
  j = Se_S + +P_S + Se_V + +P_V,   jκ = κ / 2 + j / 8   (both at most 1).
Intervals come from a bootstrap over records (patients), not beats: beats of one
record are not independent.
"""
import numpy as np

from medjax import clinical

CLASSES = ('N', 'S', 'V', 'F', 'Q')
HEADLINES = ('jkappa', 'kappa', 'se_S', 'ppv_S', 'se_V', 'ppv_V')
SELECT = 'jkappa'


def _ratio(numerator, denominator) -> float:
  return float(numerator / denominator) if denominator else float('nan')


def per_class(confusion: np.ndarray) -> dict:
  """{class: {se, ppv, fpr, count}} from a (true x predicted) confusion matrix."""
  total = confusion.sum()
  result = {}
  for k, name in enumerate(CLASSES):
    tp = confusion[k, k]
    fn, fp = confusion[k].sum() - tp, confusion[:, k].sum() - tp
    tn = total - tp - fn - fp
    result[name] = {'se': _ratio(tp, tp + fn), 'ppv': _ratio(tp, tp + fp),
                    'fpr': _ratio(fp, fp + tn), 'count': int(confusion[k].sum())}
  return result


def cohen_kappa(confusion: np.ndarray) -> float:
  total = confusion.sum()
  observed = np.trace(confusion) / total
  expected = float(confusion.sum(0) @ confusion.sum(1)) / total**2
  return _ratio(observed - expected, 1.0 - expected)


def confusion_matrix(labels, predicted) -> np.ndarray:
  k = len(CLASSES)
  return np.bincount(np.asarray(labels) * k + np.asarray(predicted),
                     minlength=k * k).reshape(k, k)


def headline(labels, probs) -> dict:
  confusion = confusion_matrix(labels, np.argmax(probs, -1))
  classes = per_class(confusion)
  kappa = cohen_kappa(confusion)
  j = sum(np.nan_to_num(classes[c][m]) for c in ('S', 'V') for m in ('se', 'ppv'))
  return {'jkappa': kappa / 2 + j / 8, 'kappa': kappa,
          'se_S': classes['S']['se'], 'ppv_S': classes['S']['ppv'],
          'se_V': classes['V']['se'], 'ppv_V': classes['V']['ppv']}


def _flat(labels, predicted) -> dict:
  confusion = confusion_matrix(labels, predicted)
  values = {'accuracy': _ratio(np.trace(confusion), confusion.sum())}
  for name, figures in per_class(confusion).items():
    values.update({f'{metric}_{name}': figures[metric] for metric in ('se', 'ppv', 'fpr')})
  kappa = cohen_kappa(confusion)
  j = sum(np.nan_to_num(values[f'{m}_{c}']) for c in ('S', 'V') for m in ('se', 'ppv'))
  values.update(kappa=kappa, j=j, jkappa=kappa / 2 + j / 8)
  return values


def report(labels, probs, groups, eval_config) -> dict:
  """The AAMI table with record-bootstrap intervals: metrics.json's 'aami' section."""
  labels, predicted = np.asarray(labels), np.argmax(probs, -1)
  point = _flat(labels, predicted)
  intervals = clinical.group_bootstrap(
      groups, lambda idx: _flat(labels[idx], predicted[idx]),
      num_resamples=eval_config.bootstrap_resamples, seed=eval_config.bootstrap_seed,
      confidence=eval_config.confidence)
  with_ci = {name: {'value': value, 'ci': list(intervals[name])} for name, value in point.items()}
  confusion = confusion_matrix(labels, predicted)
  return {
      'bootstrap': 'records',
      'num_groups': int(len(np.unique(groups))),
      'metrics': with_ci,
      'per_class': per_class(confusion),
      'confusion_matrix': confusion.tolist(),
  }
