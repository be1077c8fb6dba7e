"""Pure train and eval steps and the losses: functions of (state, batch, rng).

The loop jit-compiles these once over the mesh; nothing here touches devices,
files or globals.
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax

from medjax.data.task import Task


def class_weights(task: Task, mode: str) -> np.ndarray:
  """Per-class loss weights: 'none' (all 1) or 'balanced' (n / (K * n_k), as scikit-learn)."""
  counts = np.asarray(task.class_counts, np.float64)
  if mode == 'none' or task.multilabel:
    return np.ones(task.num_classes, np.float32)
  if mode != 'balanced':
    raise ValueError(f"train.class_weights={mode!r} is not one of ('none', 'balanced')")
  return (counts.sum() / (len(counts) * np.maximum(counts, 1))).astype(np.float32)


def per_example_loss(logits, labels, task: Task, label_smoothing: float = 0.0):
  """Softmax cross-entropy (sigmoid cross-entropy averaged over labels for multi-label)."""
  if task.multilabel:
    targets = labels * (1.0 - label_smoothing) + 0.5 * label_smoothing
    return optax.sigmoid_binary_cross_entropy(logits, targets).mean(-1)
  targets = optax.smooth_labels(jax.nn.one_hot(labels, task.num_classes), label_smoothing)
  return optax.softmax_cross_entropy(logits, targets)


def probabilities(logits, task: Task):
  return jax.nn.sigmoid(logits) if task.multilabel else jax.nn.softmax(logits)


def correct(logits, labels, task: Task):
  """Per-example accuracy (mean over labels at 0.5 for multi-label, as MedMNIST)."""
  if task.multilabel:
    return ((logits > 0) == (labels > 0.5)).mean(-1)
  return (jnp.argmax(logits, -1) == labels).astype(jnp.float32)


def model_variables(state, params=None):
  """The variables `apply_fn` takes: params (the state's unless given) and BatchNorm stats."""
  params = state.params if params is None else params
  if state.batch_stats is None:
    return {'params': params}
  return {'params': params, 'batch_stats': state.batch_stats}


def train_step(state, batch, rng, *, task: Task, weights, label_smoothing: float):
  """One optimiser step on a (global) batch; returns the new state and metrics."""
  dropout_rng = jax.random.fold_in(rng, state.step)
  example_weights = batch['mask'] if task.multilabel else batch['mask'] * weights[batch['label']]

  def loss_fn(params):
    logits, updates = state.apply_fn(model_variables(state, params), batch, train=True,
                                     mutable=['batch_stats'], rngs={'dropout': dropout_rng})
    losses = per_example_loss(logits, batch['label'], task, label_smoothing)
    loss = jnp.sum(losses * example_weights) / jnp.maximum(jnp.sum(example_weights), 1e-8)
    return loss, (logits, updates)

  (loss, (logits, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  state = state.apply_gradients(grads=grads, batch_stats=updates.get('batch_stats'))
  mask = batch['mask']
  metrics = {
      'loss': loss,
      'accuracy': jnp.sum(correct(logits, batch['label'], task) * mask) / jnp.sum(mask),
      'grad_norm': optax.tree.norm(grads),
  }
  return state, metrics


def eval_step(state, batch, *, task: Task):
  """Per-example probabilities and unweighted, unsmoothed loss for one batch."""
  logits = state.apply_fn(model_variables(state), batch, train=False)
  return {'probs': probabilities(logits, task),
          'loss': per_example_loss(logits, batch['label'], task)}
