"""Classification metrics computed on the host from per-example outputs.

scikit-learn computes AUC; masked (padding) rows are dropped first. Binary AUC
scores the second class (label 1); multi-class AUC is the macro one-vs-rest
average, multi-label AUC the macro average over labels (MedMNIST's convention).
"""
import warnings

import numpy as np
from sklearn import metrics as skm

from medjax import scores
from medjax.data.task import Task


def auc(probs: np.ndarray, labels: np.ndarray, task: Task) -> float:
  """ROC AUC, or NaN with a warning when a class needed for it is absent."""
  try:
    if task.multilabel:
      return float(skm.roc_auc_score(labels, probs, average='macro'))
    if task.num_classes == 2:
      return float(skm.roc_auc_score(labels, probs[:, 1]))
    return float(skm.roc_auc_score(labels, probs, multi_class='ovr', average='macro',
                                   labels=np.arange(task.num_classes)))
  except ValueError as error:
    warnings.warn(f'AUC is undefined here ({error}); reporting NaN')
    return float('nan')


def metric_names(task: Task) -> tuple[str, ...]:
  """The names `classification_metrics` returns for `task`: what train.select_metric
  may name."""
  extra = () if task.multilabel else ('balanced_accuracy', 'f1_macro')
  return ('num_examples', 'accuracy', 'auc', 'loss') + extra + scores.headline_names(task)


def classification_metrics(outputs: dict, task: Task) -> dict:
  """The validation metrics: `outputs` holds per-example 'probs', 'loss', 'label' and
  'mask' arrays."""
  keep = np.asarray(outputs['mask']) > 0
  probs, labels = np.asarray(outputs['probs'])[keep], np.asarray(outputs['label'])[keep]
  if task.multilabel:
    accuracy = float(np.mean((probs > 0.5) == (labels > 0.5)))
  else:
    accuracy = float(np.mean(np.argmax(probs, -1) == labels))
  values = {
      'num_examples': int(keep.sum()),
      'accuracy': accuracy,
      'auc': auc(probs, labels, task),
      'loss': float(np.mean(np.asarray(outputs['loss'])[keep])),
  }
  if not task.multilabel:
    predicted = np.argmax(probs, -1)
    values['balanced_accuracy'] = float(skm.balanced_accuracy_score(labels, predicted))
    values['f1_macro'] = float(skm.f1_score(labels, predicted, average='macro',
                                            labels=np.arange(task.num_classes), zero_division=0))
  return {**values, **scores.headlines(task, labels, probs)}
