"""Pure train and eval steps and the losses: functions of (state, batch, rng).

The loop jit-compiles these once over the mesh; nothing here touches devices,
files or globals.
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax

from medjax.data.task import Task
from medjax.train import mixing


CLASS_WEIGHTS = ('none', 'balanced')
NONFINITE_MODES = ('stop', 'skip')  # a NaN/Inf loss or gradient: stop, or skip the update


def class_weights(task: Task, mode: str) -> np.ndarray:
  """Per-class loss weights: 'none' (all 1) or 'balanced' (n / (K * n_k), as scikit-learn)."""
  counts = np.asarray(task.class_counts, np.float64)
  if mode == 'none' or task.multilabel:
    return np.ones(task.num_classes, np.float32)
  if mode != 'balanced':
    raise ValueError(f'train.class_weights={mode!r} is not one of {CLASS_WEIGHTS}')
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
  """The variables `apply_fn` takes: params (the state's unless given) and BatchNorm
  stats. Without `params`, the variables evaluated: their moving average where the
  state keeps one (`train.ema`)."""
  if params is None and getattr(state, 'ema', None) is not None:
    return state.ema
  params = state.params if params is None else params
  if state.batch_stats is None:
    return {'params': params}
  return {'params': params, 'batch_stats': state.batch_stats}


def example_weights(task: Task, weights, labels, mask):
  """Each example's share of the loss (and of the ridge fit): its mask times its class
  weight (single-label)."""
  return mask if task.multilabel else mask * weights[labels]


def _split_micro(batch, microbatches: int):
  """(B, ...) -> (M, B / M, ...), micro-batch m holding rows m, m + M, ...: a strided
  split keeps every device's rows on that device."""
  def split(x):
    x = x.reshape((x.shape[0] // microbatches, microbatches) + x.shape[1:])
    return jnp.swapaxes(x, 0, 1)
  return jax.tree.map(split, batch)


def ema_decay_at(decay: float, step):
  """The moving average's decay at `step`: `decay`, lowered early in training
  ((1 + step) / (10 + step), as TensorFlow's ExponentialMovingAverage) so that a short
  run's average is not dominated by the initial weights."""
  return jnp.minimum(decay, (1.0 + step) / (10.0 + step))


def update_ema(ema, variables, decay):
  return jax.tree.map(lambda average, new: decay * average + (1.0 - decay) * new,
                      ema, variables)


def train_step(state, batch, rng, *, task: Task, weights, label_smoothing: float,
               microbatches: int = 1, skip_nonfinite: bool = False, ema_decay: float = 0.0,
               mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0):
  """One optimiser step on a (global) batch; returns the new state and metrics.

  With `microbatches` > 1 the gradient is accumulated over strided micro-batches
  and normalised by the whole batch's weight: the same update as the full batch
  (for models with BatchNorm, each micro-batch is normalised by its own
  statistics). A step whose loss or gradient is not finite is reported in the
  metrics (`finite` = 0); with `skip_nonfinite` its update is dropped. Where the
  state keeps an `ema` of its variables (weights and BatchNorm statistics), it moves
  towards the new ones with `ema_decay` (see `ema_decay_at`). With a mixup or CutMix alpha the batch is mixed first
  (medjax/train/mixing.py) and the loss is λ loss(label) + (1 - λ) loss(partner's).
  """
  dropout_rng = jax.random.fold_in(rng, state.step)
  mixing_on = bool(mixup_alpha or cutmix_alpha)
  if mixing_on:
    mixing_rng = jax.random.fold_in(jax.random.fold_in(rng, mixing.RNG_STREAM), state.step)
    batch, partner_labels, lam = mixing.mix(batch, mixing_rng, task, mixup_alpha=mixup_alpha,
                                            cutmix_alpha=cutmix_alpha)
    batch = {**batch, 'partner_label': partner_labels,
             'partner_weight': example_weights(task, weights, partner_labels,
                                                batch['mask'][::-1])}
  batch = {**batch, 'weight': example_weights(task, weights, batch['label'], batch['mask'])}
  total_weight = jnp.sum(batch['weight'])
  if mixing_on:
    total_weight = lam * total_weight + (1.0 - lam) * jnp.sum(batch['partner_weight'])
  total_weight = jnp.maximum(total_weight, 1e-8)

  def weighted_loss(params, batch_stats, micro, micro_rng):
    variables = model_variables(state.replace(batch_stats=batch_stats), params)
    logits, updates = state.apply_fn(variables, micro, train=True, mutable=['batch_stats'],
                                     rngs={'dropout': micro_rng})
    loss = jnp.sum(per_example_loss(logits, micro['label'], task, label_smoothing)
                   * micro['weight'])
    if mixing_on:
      partner_loss = jnp.sum(per_example_loss(logits, micro['partner_label'], task,
                                              label_smoothing) * micro['partner_weight'])
      loss = lam * loss + (1.0 - lam) * partner_loss
    return loss / total_weight, (logits, updates.get('batch_stats'))

  grad_fn = jax.value_and_grad(weighted_loss, has_aux=True)
  if microbatches == 1:
    (loss, (logits, batch_stats)), grads = grad_fn(state.params, state.batch_stats, batch,
                                                   dropout_rng)
    correct_sum = jnp.sum(correct(logits, batch['label'], task) * batch['mask'])
  else:
    def accumulate(carry, inputs):
      grads, loss, correct_sum, batch_stats = carry
      index, micro = inputs
      (micro_loss, (logits, batch_stats)), micro_grads = grad_fn(
          state.params, batch_stats, micro, jax.random.fold_in(dropout_rng, index))
      micro_correct = jnp.sum(correct(logits, micro['label'], task) * micro['mask'])
      return (jax.tree.map(jnp.add, grads, micro_grads), loss + micro_loss,
              correct_sum + micro_correct, batch_stats), None

    zeros = jax.tree.map(jnp.zeros_like, state.params)
    inputs = (jnp.arange(microbatches), _split_micro(batch, microbatches))
    (grads, loss, correct_sum, batch_stats), _ = jax.lax.scan(
        accumulate, (zeros, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32),
                     state.batch_stats), inputs)
  grad_norm = optax.tree.norm(grads)
  finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
  new_state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
  if getattr(state, 'ema', None) is not None:
    new_state = new_state.replace(ema=update_ema(
        state.ema, model_variables(new_state, new_state.params),
        ema_decay_at(ema_decay, state.step)))
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
