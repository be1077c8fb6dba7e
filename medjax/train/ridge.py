"""Closed-form training of the head (`train.solver='ridge'`): ROCKET's ridge classifier.

For models with nothing to learn before their head (ROCKET's random kernels, the
linear baseline's standardised inputs). The head's input (`Diagnoser.embed`) of every
training example is computed once, in evaluation mode and without augmentation, and
standardised; the head is then the ridge regression of the ±1 class indicators on
it (scikit-learn's RidgeClassifier, the classifier of the ROCKET paper), solved in
closed form from one SVD for each of `train.ridge_alphas`; `train.class_weights`
weights each example's squared error by its class's weight, as RidgeClassifier's
`class_weight`. Each alpha's head is validated as a training checkpoint would be (the
metrics log's step k is the k-th alpha), and the best by `train.select_metric` is kept
as the `best` checkpoint with the standardisation folded into its weights, so
evaluation and prediction read it as they read any other. The regression's scores
(about ±1) are not log-odds: each alpha's head is first divided by the temperature
that minimises its validation loss (medjax/calibration.py), so that its loss, and a
validation loss compared across models, mean what they mean for a head trained on the
cross-entropy. With no validation split (`data.refit`), each alpha is validated by
leave-one-out on the training examples instead, in closed form from the same SVD (as
scikit-learn's RidgeClassifierCV, the ROCKET paper's own choice of alpha): the
temperature is fitted on, and the alpha chosen by, the leave-one-out scores.

The training features are held in host memory (examples x features, float64): the
ROCKET paper itself moves to logistic regression (here: `train.solver='gradient'`)
above about 10,000 training examples.
"""
import json
import pathlib
import time

import jax
import numpy as np
from absl import logging

from medjax import calibration, checkpoint, evaluate, files, metrics, tta
from medjax.config import ConfigError
from medjax.train import objectives
from medjax.train import step as steps
from medjax.train.log import MetricWriter

HEAD = 'head'
MAX_FEATURE_VALUES = 2**28  # examples x features held for the SVD (2 GiB as float64)


def check_model(task, abstract_params) -> None:
  """ConfigError unless the ridge solver can fit this model on this task."""
  if task.label_level != 'example':
    raise ConfigError(f"train.solver='ridge' fits one label per example; {task.name} has "
                      f'{task.label_level} labels')
  trained_before_head = sorted(name for name in abstract_params if name != HEAD)
  if trained_before_head:
    raise ConfigError(f"train.solver='ridge' fits only the head, but the model has "
                      f'parameters before it ({", ".join(trained_before_head)}): use '
                      "train.solver='gradient', or an encoder with nothing to train (rocket)")


def indicator_targets(labels: np.ndarray, task) -> np.ndarray:
  """(n, outputs) targets in {-1, +1}: one column per class (per label if multi-label)."""
  hot = labels if task.multilabel else np.eye(task.num_classes)[labels.astype(int)]
  return 2.0 * np.asarray(hot, np.float64) - 1.0


def _training_features(experiment, state) -> tuple[np.ndarray, np.ndarray]:
  """(features, labels) of every training example, in evaluation mode, plain inputs."""
  def embed(state, batch):
    return {'features': state.apply_fn(steps.model_variables(state), batch, train=False,
                                       method='embed')}
  outputs = evaluate.split_outputs(experiment, state, 'train', jax.jit(embed),
                                   tta.views('', experiment.dataset.task))
  kept = outputs['mask'] > 0
  return outputs['features'][kept].astype(np.float64), outputs['label'][kept]


class RidgePath:
  """The ridge solutions for any alpha from one SVD of the standardised features,
  each example's squared error weighted by `weights` (all 1 when None). The
  standardisation is unweighted (a StandardScaler before the classifier); the
  intercept is fitted with the weights, as scikit-learn does."""

  def __init__(self, features: np.ndarray, targets: np.ndarray,
               weights: np.ndarray | None = None):
    weights = np.ones(len(features)) if weights is None else np.asarray(weights, np.float64)
    scale = features.std(0)
    self.scale = np.where(scale > 0, scale, 1.0)  # constant features: left as they are
    self.feature_mean = np.average(features, axis=0, weights=weights)
    self.target_mean = np.average(targets, axis=0, weights=weights)
    root = np.sqrt(weights)[:, None]
    left, self.singular, right_t = np.linalg.svd(
        root * (features - self.feature_mean) / self.scale, full_matrices=False)
    self.right = right_t.T
    self.projected = left.T @ (root * (targets - self.target_mean))
    self.features, self.targets = features, targets
    # Each example's leverage is its share of the (unpenalised) intercept plus
    # sum_j U_ij^2 s_j^2 / (s_j^2 + alpha): the left singular vectors squared are kept.
    self.intercept_leverage = weights / weights.sum()
    self.left_squared = left**2

  def head(self, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """(kernel, bias) of the head on the raw features: the W and b of least
    sum_i w_i ||z_i W + b - y_i||^2 + alpha ||W||^2 on the standardised z, the
    standardisation folded in."""
    shrunk = (self.singular / (self.singular**2 + alpha))[:, None] * self.projected
    weights = self.right @ shrunk
    kernel = weights / self.scale[:, None]
    return kernel, self.target_mean - self.feature_mean @ kernel

  def leave_one_out_scores(self, alpha: float) -> np.ndarray:
    """(n, outputs) scores of each training example by the head fitted without it
    (the standardisation kept): the fitted residual divided by 1 - its leverage."""
    kernel, bias = self.head(alpha)
    fitted = self.features @ kernel + bias
    shrink = self.singular**2 / (self.singular**2 + alpha)
    leverage = self.intercept_leverage + self.left_squared @ shrink
    return self.targets - (self.targets - fitted) / (1.0 - leverage)[:, None]


def _with_head(state, kernel, bias):
  params = dict(state.params)
  params[HEAD] = {'kernel': jax.device_put(kernel.astype(np.float32),
                                           state.params[HEAD]['kernel'].sharding),
                  'bias': jax.device_put(bias.astype(np.float32),
                                         state.params[HEAD]['bias'].sharding)}
  return state.replace(params=params)


def _calibrated_metrics(scores, labels, mask, task, **kept) -> tuple[float, dict]:
  """(temperature, metrics) of a head's `scores` (logits), the temperature fitted on the
  examples of `mask` and applied to every score; `kept`: other outputs the metrics read
  (an example's group)."""
  counted = mask > 0
  scale = calibration.fit_temperature(scores[counted], labels[counted], task)
  logits = scores / scale
  outputs = {'logits': logits, 'probs': calibration.probabilities(logits, task),
             'loss': np.asarray(steps.per_example_loss(logits, labels, task)),
             'label': labels, 'mask': mask, **kept}
  return scale, metrics.classification_metrics(outputs, task)


def _validated_heads(experiment, path: RidgePath, labels, workdir):
  """Yields (alpha number, alpha, state with its head, temperature, validation metrics)
  for each of `train.ridge_alphas`, logging the metrics as steps 1, 2, ...: on the
  validation split, or by leave-one-out where there is none. Dividing the head by the
  temperature divides its logits by it, so each alpha's head is evaluated once."""
  task = experiment.dataset.task
  validating = 'val' in experiment.dataset.sources
  writer = MetricWriter(workdir)
  try:
    for number, alpha in enumerate(experiment.config.train.ridge_alphas, 1):
      kernel, bias = path.head(alpha)
      if validating:
        _, outputs = evaluate.evaluate(experiment, _with_head(experiment.state, kernel, bias),
                                       'val')
        scale, values = _calibrated_metrics(
            outputs['logits'], outputs['label'], outputs['mask'], task,
            **{key: outputs[key] for key in ('index', 'group') if key in outputs})
      else:
        scale, values = _calibrated_metrics(path.leave_one_out_scores(alpha), labels,
                                            np.ones(len(labels)), task)
      state = _with_head(experiment.state, kernel / scale, bias / scale)
      writer.write(number, 'val' if validating else 'leave_one_out',
                   {**values, 'ridge_alpha': alpha})
      yield number, alpha, state, scale, values
  finally:
    writer.close()


def train(experiment, workdir) -> dict:
  """Fits the head in closed form (see the module docstring); returns the summary, as
  `medjax.train.loop.train` does. A workdir already fitted is not fitted again."""
  workdir = pathlib.Path(workdir)
  summary_file = workdir / 'train_summary.json'
  if summary_file.exists():  # written after the checkpoint: the fit is done
    return json.loads(summary_file.read_text())
  examples = len(experiment.dataset.sources['train'])
  features_each = experiment.state.params[HEAD]['kernel'].shape[0]
  if examples * features_each > MAX_FEATURE_VALUES:
    raise ValueError(f"train.solver='ridge' would hold {examples} x {features_each} "
                     "training features in memory; with this many use "
                     "train.solver='gradient'")
  started = time.perf_counter()
  features, labels = _training_features(experiment, experiment.state)
  task = experiment.dataset.task
  weights = steps.example_weights(
      task, steps.class_weights(task, experiment.config.train.class_weights),
      labels.astype(int), np.ones(len(labels)))
  path = RidgePath(features, indicator_targets(labels, task), weights)
  select, chosen = experiment.select_metric, None
  for number, alpha, state, scale, values in _validated_heads(experiment, path, labels, workdir):
    if chosen is None or objectives.improves(select, values[select], chosen['best_metric']):
      chosen = {'best_metric': values[select], 'best_step': number, 'ridge_alpha': alpha,
                'ridge_temperature': scale, 'state': state}
  state = chosen.pop('state')
  alphas = experiment.config.train.ridge_alphas
  at_edge = len(alphas) > 1 and chosen['ridge_alpha'] in (min(alphas), max(alphas))
  if at_edge:
    logging.warning('the best of train.ridge_alphas, %g, is at the edge of the '
                    'grid (%g ... %g): a wider grid may fit better', chosen['ridge_alpha'],
                    min(alphas), max(alphas))
  meta = {**chosen, 'select_metric': select, 'train_seconds': time.perf_counter() - started}
  sign = -1.0 if select in objectives.LOWER_IS_BETTER else 1.0
  best = checkpoint.Checkpoints(workdir / 'best', max_to_keep=1, best_metric='selection')
  try:
    best.save(meta['best_step'], state, meta, metrics={'selection': sign * meta['best_metric']})
    best.wait()
  finally:
    best.close()
  summary = {'train_seconds': meta['train_seconds'], 'steps': 0, 'solver': 'ridge',
             'ridge_alpha': meta['ridge_alpha'], 'ridge_alpha_at_grid_edge': at_edge,
             'ridge_temperature': meta['ridge_temperature'],
             'best_step': meta['best_step'], 'select_metric': select,
             'best_validation': meta['best_metric'], 'compile_seconds': None,
             'skipped_steps': 0}
  if jax.process_index() == 0:
    files.write_json_atomic(summary_file, summary)
  return summary
