"""The train loop: where the side effects of training live.

`train(experiment, workdir)` trains an experiment built by
`medjax.train.setup.build_experiment`, resuming from the latest checkpoint in
`workdir` if there is one, validating every `train.eval_every` steps and keeping
the best checkpoint by the validation metric `train.select_metric`. A refit
(`data.refit`: no validation split) keeps its last step as the best checkpoint.
Evaluation of the result is medjax/evaluate.py's.
"""
import contextlib
import pathlib
import signal
import threading
import time

import jax
import numpy as np
import tqdm
from absl import logging
from jax.experimental import multihost_utils

from medjax import checkpoint, evaluate, files, parallel
from medjax.data import pipeline
from medjax.train import objectives
from medjax.train.log import MetricWriter
from medjax.train.setup import Experiment, device_batch


class NonFiniteLossError(RuntimeError):
  """Training produced a NaN or infinite loss."""


class Preempted(Exception):
  """SIGTERM arrived; the loop saved a checkpoint of `step` and stopped."""

  def __init__(self, step: int, workdir):
    super().__init__(f'stopped by SIGTERM at step {step}; the checkpoint of step {step} is '
                     f'saved in {workdir}/checkpoints: rerun the same command to resume')


@contextlib.contextmanager
def _sigterm_recorded():
  """While training, SIGTERM (preemption) sets an event instead of killing the process."""
  received = threading.Event()
  if threading.current_thread() is not threading.main_thread():
    yield received
    return
  previous = signal.signal(signal.SIGTERM, lambda *_: received.set())
  try:
    yield received
  finally:
    signal.signal(signal.SIGTERM, previous)


def _all_agree_to_stop(received: threading.Event, step: int, every: int) -> bool:
  """Whether any process got SIGTERM; hosts compare notes every `every` steps."""
  if jax.process_count() == 1:
    return received.is_set()
  if step % every:
    return False
  flags = multihost_utils.process_allgather(np.asarray(received.is_set()))
  return bool(np.any(flags))


def _check_finite(history: list[dict], first_step: int, skip: bool,
                  checkpoints: checkpoint.Checkpoints, workdir) -> int:
  """Raises NonFiniteLossError at the first non-finite step (unless `skip`); returns
  how many steps of `history` were not finite."""
  bad = np.flatnonzero(np.asarray([h['finite'] for h in history]) == 0)
  if bad.size and not skip:
    step, loss = first_step + bad[0] + 1, history[bad[0]]['loss']
    what = (f'training loss is {loss}' if not np.isfinite(loss) else
            f'the gradient is not finite (loss {loss:.4g})')
    kept = checkpoints.latest_step()
    kept_text = (f'the last good checkpoint (step {kept}) is kept in {workdir}/checkpoints'
                 if kept is not None else 'no checkpoint was written')
    raise NonFiniteLossError(f'{what} at step {step}; stopping ({kept_text}). Try a lower '
                             'optim.learning_rate, optim.grad_clip_norm, or '
                             "train.nonfinite='skip'.")
  return int(bad.size)


def train(experiment: Experiment, workdir) -> dict:
  """Runs (or resumes) training; returns a summary with the training time.

  Resuming restores the newest readable checkpoint of `workdir/checkpoints`:
  state, step and the input pipeline's position, so the run continues on the
  same batches as an uninterrupted one. SIGTERM saves a checkpoint and raises
  `Preempted`.
  """
  config, task = experiment.config, experiment.dataset.task
  workdir = pathlib.Path(workdir)
  latest = checkpoint.Checkpoints(workdir / 'checkpoints',
                                  max_to_keep=config.train.checkpoints_to_keep)
  select = experiment.select_metric
  validating = 'val' in experiment.dataset.sources
  # Orbax keeps the highest 'selection' value: the metric, negated where lower is better.
  best = checkpoint.Checkpoints(workdir / 'best', max_to_keep=1, best_metric='selection')
  batches = iter(pipeline.train_batches(
      experiment.dataset.sources['train'], task, config.data,
      global_batch_size=config.train.batch_size, seed=config.seed,
      process_index=jax.process_index(), process_count=jax.process_count()))
  state = experiment.state
  meta = {'best_metric': None, 'best_step': None, 'select_metric': select, 'train_seconds': 0.0}
  start = 0
  restored = latest.restore_newest_readable(
      checkpoint.abstract_like(state, experiment.state_sharding), workdir / 'corrupt_checkpoints')
  if restored:
    start, state, meta = restored
    batches.set_state(meta.pop('data_iterator'))
    logging.warning('resuming from step %d in %s', start, workdir)
  writer = MetricWriter(workdir)
  dropout_rng = jax.random.fold_in(jax.random.key(config.seed), 1)
  history, history_start, skipped = [], start, meta.get('skipped_steps', 0)
  started = time.perf_counter()
  seconds_before = meta['train_seconds']
  progress = tqdm.tqdm(total=config.train.steps, initial=start, desc='train', unit='step',
                       disable=not config.train.progress_bar or jax.process_index() != 0)

  def next_batch():
    return parallel.to_global(device_batch(next(batches)), experiment.mesh)

  def flush(step):
    nonlocal history, history_start, skipped
    if not history:
      return
    fetched = jax.device_get(history)
    skipped += _check_finite(fetched, history_start, config.train.nonfinite == 'skip', latest,
                             workdir)
    means = {k: float(np.mean([h[k] for h in fetched])) for k in fetched[0] if k != 'finite'}
    means['skipped_steps'] = skipped
    writer.write(step, 'train', means)
    progress.set_postfix(loss=f'{means["loss"]:.4f}')
    history, history_start = [], step

  compile_seconds = None
  try:
    with _sigterm_recorded() as sigterm:
      if start < config.train.steps:
        batch = next_batch()
        compile_started = time.perf_counter()
        train_step = experiment.train_step.lower(state, batch, dropout_rng).compile()
        compile_seconds = time.perf_counter() - compile_started
        writer.write(start + 1, 'train', {'compile_seconds': compile_seconds})
        logging.warning('train step compiled in %.1f s', compile_seconds)
      for step in range(start + 1, config.train.steps + 1):
        if step > start + 1:
          batch = next_batch()
        state, step_metrics = train_step(state, batch, dropout_rng)
        history.append(step_metrics)
        progress.update(1)
        last = step == config.train.steps
        stop = _all_agree_to_stop(sigterm, step, config.train.log_every)
        if step % config.train.log_every == 0 or last:
          flush(step)
        if not validating and last:
          meta.update(best_step=step)
          best.save(step, state, {**meta}, metrics={'selection': 0.0})
        elif validating and (step % config.train.eval_every == 0 or last):
          flush(step)
          values, _ = evaluate.evaluate(experiment, state, 'val')
          writer.write(step, 'val', values)
          if objectives.improves(select, values[select], meta['best_metric']):
            meta.update(best_metric=values[select], best_step=step)
            sign = -1.0 if select in objectives.LOWER_IS_BETTER else 1.0
            best.save(step, state, {**meta}, metrics={'selection': sign * values[select]})
        if step % config.train.checkpoint_every == 0 or last or stop:
          flush(step)
          meta.update(train_seconds=seconds_before + time.perf_counter() - started,
                      skipped_steps=skipped)
          latest.save(step, state, {**meta, 'data_iterator': batches.get_state()})
        if stop and not last:
          raise Preempted(step, workdir)
  finally:
    progress.close()
    latest.wait()
    best.wait()
    latest.close()
    best.close()
    writer.close()
  summary = {'train_seconds': meta['train_seconds'], 'steps': config.train.steps,
             'best_step': meta['best_step'], 'select_metric': select,
             'best_validation': meta['best_metric'],
             'compile_seconds': compile_seconds, 'skipped_steps': skipped}
  if jax.process_index() == 0:
    files.write_json_atomic(workdir / 'train_summary.json', summary)
  return summary
