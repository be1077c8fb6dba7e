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


def _split_micro(batch, microbatches: int):
  """(B, ...) -> (M, B / M, ...), micro-batch m holding rows m, m + M, ...: a strided
  split keeps every device's rows on that device."""
  def split(x):
    x = x.reshape((x.shape[0] // microbatches, microbatches) + x.shape[1:])
    return jnp.swapaxes(x, 0, 1)
  return jax.tree.map(split, batch)


def train_step(state, batch, rng, *, task: Task, weights, label_smoothing: float,
               microbatches: int = 1, skip_nonfinite: bool = False):
  """One optimiser step on a (global) batch; returns the new state and metrics.

  With `microbatches` > 1 the gradient is accumulated over strided micro-batches
  and normalised by the whole batch's weight: the same update as the full batch
  (for models with BatchNorm, each micro-batch is normalised by its own
  statistics). A step whose loss or gradient is not finite is reported in the
  metrics (`finite` = 0); with `skip_nonfinite` its update is dropped.
  """
  dropout_rng = jax.random.fold_in(rng, state.step)
  example_weights = batch['mask'] if task.multilabel else batch['mask'] * weights[batch['label']]
  total_weight = jnp.maximum(jnp.sum(example_weights), 1e-8)

  def weighted_loss(params, batch_stats, micro, micro_weights, micro_rng):
    variables = model_variables(state.replace(batch_stats=batch_stats), params)
    logits, updates = state.apply_fn(variables, micro, train=True, mutable=['batch_stats'],
                                     rngs={'dropout': micro_rng})
    losses = per_example_loss(logits, micro['label'], task, label_smoothing)
    return jnp.sum(losses * micro_weights) / total_weight, (logits, updates.get('batch_stats'))

  grad_fn = jax.value_and_grad(weighted_loss, has_aux=True)
  if microbatches == 1:
    (loss, (logits, batch_stats)), grads = grad_fn(state.params, state.batch_stats, batch,
                                                   example_weights, dropout_rng)
    correct_sum = jnp.sum(correct(logits, batch['label'], task) * batch['mask'])
  else:
    def accumulate(carry, inputs):
      grads, loss, correct_sum, batch_stats = carry
      index, micro, micro_weights = inputs
      (micro_loss, (logits, batch_stats)), micro_grads = grad_fn(
          state.params, batch_stats, micro, micro_weights, jax.random.fold_in(dropout_rng, index))
      micro_correct = jnp.sum(correct(logits, micro['label'], task) * micro['mask'])
      return (jax.tree.map(jnp.add, grads, micro_grads), loss + micro_loss,
              correct_sum + micro_correct, batch_stats), None

    zeros = jax.tree.map(jnp.zeros_like, state.params)
    inputs = (jnp.arange(microbatches), _split_micro(batch, microbatches),
              _split_micro(example_weights, microbatches))
    (grads, loss, correct_sum, batch_stats), _ = jax.lax.scan(
        accumulate, (zeros, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32),
                     state.batch_stats), inputs)
  grad_norm = optax.tree.norm(grads)
  finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
  new_state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
  if skip_nonfinite:
    kept = jax.tree.map(lambda new, old: jnp.where(finite, new, old),
                        new_state.replace(step=state.step), state)
    new_state = kept.replace(step=new_state.step)
  metrics = {
      'loss': loss,
      'accuracy': correct_sum / jnp.sum(batch['mask']),
      'grad_norm': grad_norm,
      'finite': finite.astype(jnp.float32),
  }
  return new_state, metrics


def eval_step(state, batch, *, task: Task):
  """Per-example logits (for calibration), probabilities and unweighted, unsmoothed loss
  for one batch."""
  logits = state.apply_fn(model_variables(state), batch, train=False)
  return {'logits': logits, 'probs': probabilities(logits, task),
          'loss': per_example_loss(logits, batch['label'], task)}
