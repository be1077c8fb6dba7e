"""The assembled clinical report for binary, multi-class and multi-label tasks."""
import ml_collections
import numpy as np
import pytest
from sklearn import metrics as skm

from configs import common
from medjax import clinical, evaluation
from medjax.data.task import InputSpec, Task


def _task(kind, num_classes):
  return Task('t', kind, tuple(f'c{k}' for k in range(num_classes)), (10,) * num_classes,
              {'image': InputSpec('image', (4, 4, 1))})


def _eval_config(**overrides) -> ml_collections.ConfigDict:
  config = common.get_config().eval
  config.bootstrap_resamples = 50
  config.update(overrides)
  return config


def _outputs(labels, probs, padding=3):
  """Per-example outputs with `padding` masked rows appended (garbage values)."""
  pad_labels = np.zeros((padding,) + labels.shape[1:], labels.dtype)
  return {'label': np.concatenate([labels, pad_labels]),
          'probs': np.concatenate([probs, np.full((padding,) + probs.shape[1:], 0.99)]),
          'mask': np.concatenate([np.ones(len(labels)), np.zeros(padding)])}


def _binary(seed, n=120):
  rng = np.random.default_rng(seed)
  labels = (rng.random(n) < 0.4).astype(np.int32)
  p1 = np.clip(rng.normal(0.35 + 0.3 * labels, 0.2), 0.001, 0.999)
  return labels, np.stack([1 - p1, p1], -1)


@pytest.mark.parametrize('positive_class,positive', [('', 1), ('c0', 0)])
def test_binary_report_applies_the_validation_threshold(positive_class, positive):
  labels, probs = _binary(0)
  val_labels, val_probs = _binary(1)
  config = _eval_config(positive_class=positive_class)
  report = evaluation.clinical_report(_outputs(labels, probs), _outputs(val_labels, val_probs),
                                      _task('binary', 2), config)
  assert report['positive_class'] == f'c{positive}'
  threshold = clinical.operating_threshold((val_labels == positive).astype(int),
                                           val_probs[:, positive])
  assert report['operating_point']['threshold'] == pytest.approx(threshold)
  expected = clinical.threshold_metrics((labels == positive).astype(int), probs[:, positive],
                                        threshold)
  for name in ('sensitivity', 'specificity', 'ppv', 'npv', 'mcc'):
    assert report['metrics'][name]['value'] == pytest.approx(expected[name])
  assert report['metrics']['auc']['value'] == pytest.approx(
      skm.roc_auc_score(labels == positive, probs[:, positive]))
  for entry in report['metrics'].values():
    assert entry['ci'][0] <= entry['value'] + 1e-12 and entry['value'] <= entry['ci'][1] + 1e-12


def test_unknown_positive_class_is_named():
  labels, probs = _binary(0)
  with pytest.raises(ValueError, match="eval.positive_class='tumour'"):
    evaluation.clinical_report(_outputs(labels, probs), _outputs(labels, probs),
                               _task('binary', 2), _eval_config(positive_class='tumour'))


def test_multiclass_report_matches_scikit_learn():
  rng = np.random.default_rng(2)
  labels = rng.integers(0, 4, 200).astype(np.int32)
  logits = rng.normal(size=(200, 4)) + 1.5 * np.eye(4)[labels]
  probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  report = evaluation.clinical_report(_outputs(labels, probs), _outputs(labels, probs),
                                      _task('multiclass', 4), _eval_config())
  predicted = probs.argmax(-1)
  metrics = report['metrics']
  assert metrics['auc']['value'] == pytest.approx(
      skm.roc_auc_score(labels, probs, multi_class='ovr'))
  assert metrics['balanced_accuracy']['value'] == pytest.approx(
      skm.balanced_accuracy_score(labels, predicted))
  assert metrics['f1_macro']['value'] == pytest.approx(
      skm.f1_score(labels, predicted, average='macro'))
  assert metrics['mcc']['value'] == pytest.approx(skm.matthews_corrcoef(labels, predicted))
  assert np.array_equal(report['confusion_matrix'], skm.confusion_matrix(labels, predicted))
  for k in range(4):
    assert report['per_class'][f'c{k}']['sensitivity'] == pytest.approx(
        skm.recall_score(labels == k, predicted == k))


def test_multilabel_report_is_per_label_and_macro():
  rng = np.random.default_rng(3)
  labels = (rng.random((150, 3)) < 0.3).astype(np.float32)
  probs = np.clip(rng.normal(0.3 + 0.4 * labels, 0.2), 0.001, 0.999)
  report = evaluation.clinical_report(_outputs(labels, probs), _outputs(labels, probs),
                                      _task('multilabel', 3), _eval_config())
  aucs = [skm.roc_auc_score(labels[:, k], probs[:, k]) for k in range(3)]
  for k in range(3):
    assert report['per_label'][f'c{k}']['auc'] == pytest.approx(aucs[k])
  assert report['metrics']['auc']['value'] == pytest.approx(np.mean(aucs))
  assert report['metrics']['auc']['value'] == pytest.approx(
      skm.roc_auc_score(labels, probs, average='macro'))
