"""The clinical evaluation of one split: what `eval/<split>/metrics.json` holds.

Binary tasks: ROC AUC, PR AUC, calibration (ECE, Brier) and the confusion-matrix
metrics at an operating point chosen on the validation split (Youden's J, or a
target sensitivity/specificity) and applied unchanged to the evaluated split.
Multi-class (and ordinal) tasks: macro one-vs-rest AUC, accuracy, balanced
accuracy, macro F1 and MCC of the argmax decision, with per-class figures.
Multi-label tasks: each label as a binary task with its own operating point,
macro-averaged. Headline metrics get 95% stratified-bootstrap intervals.
"""
import numpy as np
from sklearn import metrics as skm

from medjax import clinical, scores
from medjax.data.task import Task

BINARY_HEADLINES = ('auc', 'pr_auc', 'accuracy', 'balanced_accuracy', 'sensitivity',
                    'specificity', 'ppv', 'npv', 'f1', 'mcc', 'brier', 'ece')
MULTICLASS_HEADLINES = ('auc', 'accuracy', 'balanced_accuracy', 'f1_macro', 'mcc')


def positive_index(task: Task, positive_class: str) -> int:
  """The class scored as positive in a binary task: by label name, else label 1."""
  if not positive_class:
    return 1
  if positive_class not in task.label_names:
    raise ValueError(f'eval.positive_class={positive_class!r} is not one of {task.label_names}')
  return task.label_names.index(positive_class)


def kept(outputs: dict) -> dict:
  """Drops evaluation padding (mask 0)."""
  keep = np.asarray(outputs['mask']) > 0
  return {key: np.asarray(value)[keep] for key, value in outputs.items()}


def _binary_point(labels, scores, threshold) -> dict:
  return {
      'auc': clinical.roc_auc(labels, scores),
      'pr_auc': clinical.pr_auc(labels, scores),
      'brier': clinical.brier_score(labels, scores),
      'ece': clinical.expected_calibration_error(labels, scores),
      **clinical.threshold_metrics(labels, scores, threshold),
  }


def _with_intervals(point: dict, labels, statistic, names, eval_config, groups=None) -> dict:
  """Point values with bootstrap intervals: over whole groups (patients) where the
  task has them, else over examples stratified by class."""
  options = dict(num_resamples=eval_config.bootstrap_resamples,
                 seed=eval_config.bootstrap_seed, confidence=eval_config.confidence)
  if groups is not None:
    intervals = clinical.group_bootstrap(groups, statistic, **options)
  else:
    intervals = clinical.stratified_bootstrap(labels, statistic, **options)
  return {name: {'value': point[name], 'ci': list(intervals[name])} for name in names}


def _binary_report(labels, scores, val_labels, val_scores, eval_config, groups=None) -> dict:
  """The binary metrics at the threshold `eval.operating_threshold` where given (the
  validation arrays are then not read), else chosen on validation by the rule."""
  if eval_config.operating_threshold:
    threshold, chosen_on = eval_config.operating_threshold, 'eval.operating_threshold'
  else:
    threshold, chosen_on = clinical.operating_threshold(
        val_labels, val_scores, eval_config.operating_rule,
        eval_config.operating_target), 'val'
  point = _binary_point(labels, scores, threshold)
  statistic = lambda idx: _binary_point(labels[idx], scores[idx], threshold)  # noqa: E731
  return {
      'operating_point': {'rule': eval_config.operating_rule,
                          'target': eval_config.operating_target,
                          'threshold': threshold, 'chosen_on': chosen_on},
      'metrics': _with_intervals(point, labels, statistic, BINARY_HEADLINES, eval_config, groups),
      'counts': {k: point[k] for k in ('tp', 'fp', 'tn', 'fn')},
  }


def _multiclass_point(labels, probs, num_classes) -> dict:
  predicted = np.argmax(probs, -1)
  present = np.unique(labels)
  auc = (float(skm.roc_auc_score(labels, probs, multi_class='ovr', average='macro',
                                 labels=np.arange(num_classes)))
         if len(present) == num_classes else float('nan'))
  return {
      'auc': auc,
      'accuracy': float(np.mean(predicted == labels)),
      'balanced_accuracy': float(skm.balanced_accuracy_score(labels, predicted)),
      'f1_macro': float(skm.f1_score(labels, predicted, average='macro',
                                     labels=np.arange(num_classes), zero_division=0)),
      'mcc': float(skm.matthews_corrcoef(labels, predicted)),
  }


def _multiclass_report(labels, probs, task: Task, eval_config, groups=None) -> dict:
  point = _multiclass_point(labels, probs, task.num_classes)
  statistic = lambda idx: _multiclass_point(labels[idx], probs[idx], task.num_classes)  # noqa
  predicted = np.argmax(probs, -1)
  per_class = {}
  for k, name in enumerate(task.label_names):
    is_k = (labels == k).astype(int)
    per_class[name] = {
        'count': int(is_k.sum()),
        'auc': clinical.roc_auc(is_k, probs[:, k]),
        **{m: v for m, v in clinical.threshold_metrics(is_k, (predicted == k).astype(float),
                                                        0.5).items()
           if m in ('sensitivity', 'specificity', 'ppv', 'f1')},
    }
  return {'decision': 'argmax',
          'metrics': _with_intervals(point, labels, statistic, MULTICLASS_HEADLINES, eval_config,
                                     groups),
          'per_class': per_class,
          'confusion_matrix': skm.confusion_matrix(labels, predicted,
                                                   labels=np.arange(task.num_classes)).tolist()}


def _multilabel_report(labels, probs, val_labels, val_probs, task: Task, eval_config) -> dict:
  per_label, thresholds = {}, []
  for k, name in enumerate(task.label_names):
    threshold = clinical.operating_threshold(val_labels[:, k], val_probs[:, k],
                                             eval_config.operating_rule,
                                             eval_config.operating_target)
    thresholds.append(threshold)
    per_label[name] = {'threshold': threshold, 'count': int(labels[:, k].sum()),
                       **_binary_point(labels[:, k], probs[:, k], threshold)}

  def macro(idx):
    values = [_binary_point(labels[idx, k], probs[idx, k], t) for k, t in enumerate(thresholds)]
    return {name: float(np.nanmean([v[name] for v in values])) for name in BINARY_HEADLINES}

  everything = np.arange(len(labels))
  no_strata = np.zeros(len(labels), int)  # multi-label rows have no single class to stratify on
  return {'operating_point': {'rule': eval_config.operating_rule,
                              'target': eval_config.operating_target, 'chosen_on': 'val',
                              'per_label_thresholds': True},
          'metrics': _with_intervals(macro(everything), no_strata, macro, BINARY_HEADLINES,
                                     eval_config),
          'per_label': per_label}


def clinical_report(outputs: dict, val_outputs: dict | None, task: Task, eval_config) -> dict:
  """The clinical metrics of `outputs`, with operating points chosen on `val_outputs`
  (None for a refit: tasks decided by the arg max, or binary ones given
  `eval.operating_threshold`), and the task's own scores (medjax/scores/).

  Both hold per-example 'probs', 'label' and 'mask' (padding already allowed for), and
  'group' where the task has groups (intervals then resample groups).
  """
  outputs = kept(outputs)
  val_outputs = kept(val_outputs) if val_outputs is not None else None  # None: a refit
  labels, probs = outputs['label'], outputs['probs'].astype(np.float64)
  groups = outputs.get('group')
  report = _standard_report(outputs, val_outputs, labels, probs, task, eval_config, groups)
  if task.scores:
    report.update(scores.reports(task, labels, probs, groups if groups is not None
                                 else np.arange(len(labels)), eval_config))
  return report


def _standard_report(outputs, val_outputs, labels, probs, task, eval_config, groups) -> dict:
  if task.multilabel:
    return _multilabel_report(labels.astype(int), probs, val_outputs['label'].astype(int),
                              val_outputs['probs'].astype(np.float64), task, eval_config)
  if task.kind == 'binary':
    positive = positive_index(task, eval_config.positive_class)
    val_labels, val_scores = ((None, None) if val_outputs is None else
                              ((val_outputs['label'] == positive).astype(int),
                               val_outputs['probs'][:, positive].astype(np.float64)))
    report = _binary_report((labels == positive).astype(int), probs[:, positive], val_labels,
                            val_scores, eval_config, groups)
    return {'positive_class': task.label_names[positive], **report}
  return _multiclass_report(labels, probs, task, eval_config, groups)


def saliency_selection(outputs: dict, task: Task, result: dict, eval_config,
                       num_images: int) -> list[tuple[int, str, int]]:
  """Which evaluated examples to explain first: (position, category, class to explain).

  Binary: true positives, false positives, false negatives, then true negatives,
  decided at the operating point, explaining the positive class. Otherwise:
  misclassified examples first, explaining the predicted class.
  """
  outputs = kept(outputs)
  positions = outputs['index'].astype(int)
  if task.multilabel:
    return []
  predicted = np.argmax(outputs['probs'], -1)
  if task.kind == 'binary':
    positive = positive_index(task, eval_config.positive_class)
    called = outputs['probs'][:, positive] >= result['operating_point']['threshold']
    actual = outputs['label'] == positive
    groups = [('true_positive', called & actual), ('false_positive', called & ~actual),
              ('false_negative', ~called & actual), ('true_negative', ~called & ~actual)]
    chosen = [(int(p), name, positive) for name, members in groups
              for p in positions[members]]
  else:
    wrong = predicted != outputs['label']
    chosen = ([(int(p), 'misclassified', int(c)) for p, c in zip(positions[wrong], predicted[wrong])]
              + [(int(p), 'correct', int(c)) for p, c in zip(positions[~wrong], predicted[~wrong])])
  # Round-robin over the categories so each kind of case is shown.
  by_category = {}
  for item in chosen:
    by_category.setdefault(item[1], []).append(item)
  ordered = []
  while len(ordered) < min(num_images, len(chosen)):
    for items in by_category.values():
      if items and len(ordered) < num_images:
        ordered.append(items.pop(0))
  return ordered
