"""TrainState (params, BatchNorm statistics, optimiser state) and the optimiser."""
from typing import Any

import optax
from flax.training import train_state


class TrainState(train_state.TrainState):
  batch_stats: Any = None


class EmaTrainState(TrainState):
  """A TrainState with an exponential moving average of the model variables
  ({'params'[, 'batch_stats']}), evaluated and checkpointed beside them (`train.ema`).
  A separate class, so that the checkpoints of runs without it keep their layout."""
  ema: Any = None


OPTIMIZERS = ('adam', 'adamw', 'sgd')
SCHEDULES = ('cosine', 'constant')


def learning_rate_schedule(optim_config, total_steps: int):
  """Linear warm-up to `learning_rate`, then cosine decay to 0 or constant."""
  peak = optim_config.learning_rate
  warmup = min(optim_config.warmup_steps, total_steps)
  if optim_config.schedule == 'constant':
    after = optax.constant_schedule(peak)
  else:
    after = optax.cosine_decay_schedule(peak, max(total_steps - warmup, 1))
  if not warmup:
    return after
  return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), after], [warmup])


def make_optimizer(optim_config, total_steps: int) -> optax.GradientTransformation:
  if optim_config.name not in OPTIMIZERS:
    raise ValueError(f'optim.name={optim_config.name!r} is not one of {OPTIMIZERS}')
  if optim_config.schedule not in SCHEDULES:
    raise ValueError(f'optim.schedule={optim_config.schedule!r} is not one of {SCHEDULES}')
  schedule = learning_rate_schedule(optim_config, total_steps)
  if optim_config.name == 'adam':
    optimizer = optax.adam(schedule)
  elif optim_config.name == 'adamw':
    optimizer = optax.adamw(schedule, weight_decay=optim_config.weight_decay)
  else:
    optimizer = optax.sgd(schedule, momentum=optim_config.momentum, nesterov=True)
  if optim_config.grad_clip_norm:
    optimizer = optax.chain(optax.clip_by_global_norm(optim_config.grad_clip_norm), optimizer)
  return optimizer
