"""Temperature scaling (Guo et al. 2017, "On calibration of modern neural networks").

One temperature T divides every logit before the softmax (the sigmoid for multi-label
tasks). It is fitted on the validation split by minimising its negative
log-likelihood, stored with the workdir (`calibration.json`) and applied by eval and
predict. Dividing by T > 0 changes no decision: the arg max, the sign of each logit
and every ranking (so AUC and the operating point's sensitivity and specificity) stay;
only how close the probabilities come to 0 and 1 changes.
"""
import numpy as np
from absl import logging
from scipy import optimize, special

from medjax import clinical
from medjax.data.task import Task

CALIBRATION_FILE = 'calibration.json'
# log T is searched in [log 1/20, log 20]: wider than any network needs.
_LOG_T_BOUNDS = (-np.log(20.0), np.log(20.0))


def probabilities(logits, task: Task, temperature: float = 1.0) -> np.ndarray:
  scaled = np.asarray(logits, np.float64) / temperature
  return special.expit(scaled) if task.multilabel else special.softmax(scaled, axis=-1)


def negative_log_likelihood(logits, labels, task: Task, temperature: float = 1.0) -> float:
  scaled = np.asarray(logits, np.float64) / temperature
  if task.multilabel:
    labels = np.asarray(labels, np.float64)
    # -log sigmoid(z) = logaddexp(0, -z); -log(1 - sigmoid(z)) = logaddexp(0, z)
    return float(np.mean(labels * np.logaddexp(0, -scaled) +
                         (1 - labels) * np.logaddexp(0, scaled)))
  log_probs = scaled - special.logsumexp(scaled, axis=-1, keepdims=True)
  return float(-np.mean(log_probs[np.arange(len(labels)), np.asarray(labels, int)]))


def has_misclassified(logits, labels, task: Task) -> bool:
  """Whether some example (some example's label, multi-label) is strictly on the wrong
  side: only then does the NLL grow without bound as T -> 0 and have a finite minimiser."""
  logits = np.asarray(logits, np.float64)
  if task.multilabel:
    labels = np.asarray(labels)
    return bool(np.any(np.where(labels == 1, logits < 0, logits > 0)))
  true_logit = logits[np.arange(len(labels)), np.asarray(labels, int)]
  return bool(np.any(true_logit < logits.max(-1)))


def fit_temperature(logits, labels, task: Task) -> float:
  """The T > 0 minimising the NLL of (logits, labels) (a bounded 1-D search over log T).

  When no example is misclassified the NLL falls towards 0 as T -> 0: the split holds no
  evidence of how sharp the probabilities should be, and a fit would make them as
  confident as its bound allows. T then stays 1 (no scaling), with a warning."""
  if len(labels) == 0:
    raise ValueError('cannot fit a temperature on an empty split')
  if not has_misclassified(logits, labels, task):
    logging.warning('temperature scaling: the validation split has no misclassified example, '
                    'so no temperature is identifiable; left at 1 (no scaling)')
    return 1.0
  result = optimize.minimize_scalar(
      lambda log_t: negative_log_likelihood(logits, labels, task, float(np.exp(log_t))),
      bounds=_LOG_T_BOUNDS, method='bounded', options={'xatol': 1e-5})
  return float(np.exp(result.x))


def calibration_errors(labels, probs, task: Task) -> dict:
  """ECE and Brier score of `probs`: of the positive class (label 1) for a binary task,
  of the top label (confidence against correctness) for a multi-class one, over every
  (example, label) pair for a multi-label one; and the ECE's sampling floor (what a
  perfectly calibrated model with these probabilities would measure on this split)."""
  labels, probs = np.asarray(labels), np.asarray(probs, np.float64)
  if task.multilabel:
    truth, scores = labels.ravel().astype(np.float64), probs.ravel()
    brier = clinical.brier_score(truth, scores)
  elif task.kind == 'binary':
    truth, scores = (labels == 1).astype(np.float64), probs[:, 1]
    brier = clinical.brier_score(truth, scores)
  else:
    truth = (np.argmax(probs, -1) == labels).astype(np.float64)
    scores = probs.max(-1)
    onehot = np.eye(task.num_classes)[labels.astype(int)]
    brier = float(np.mean(np.sum((probs - onehot) ** 2, -1)))
  return {'ece': clinical.expected_calibration_error(truth, scores),
          'ece_floor': clinical.ece_sampling_floor(scores), 'brier': brier}


def report(logits, labels, task: Task, temperature: float, fitted_on: str) -> dict:
  """The split's NLL, ECE and Brier score before and after scaling by `temperature`
  (fitted on `fitted_on`)."""
  before = {'nll': negative_log_likelihood(logits, labels, task),
            **calibration_errors(labels, probabilities(logits, task), task)}
  after = {'nll': negative_log_likelihood(logits, labels, task, temperature),
           **calibration_errors(labels, probabilities(logits, task, temperature), task)}
  return {'temperature': temperature, 'fitted_on': fitted_on, 'before': before, 'after': after}
