"""The train loop and checkpoint evaluation: where the side effects live.

`build_experiment(config)` builds the data, mesh, model, state and jitted steps;
`train(experiment, workdir)` trains, resuming from the latest checkpoint in
`workdir` if there is one, and keeps the best checkpoint by validation AUC;
`evaluate_checkpoint(experiment, workdir, split)` evaluates that best checkpoint.
The command line calls the last after training and again for `--mode=eval`, so
both write identical numbers.
"""
import contextlib
import dataclasses
import functools
import math
import pathlib
import signal
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import tqdm
from absl import logging
from jax.experimental import multihost_utils

from medjax import (checkpoint, data, evaluation, explain, files, metrics, models, parallel,
                    report)
from medjax.data import pipeline, sources
from medjax.train import step as steps
from medjax.train.log import MetricWriter
from medjax.train.state import TrainState, make_optimizer

BEST_METRIC = 'auc'


class NonFiniteLossError(RuntimeError):
  """Training produced a NaN or infinite loss."""


@dataclasses.dataclass
class Experiment:
  """Everything built from a config, before any training."""
  config: object
  dataset: data.Dataset
  mesh: jax.sharding.Mesh
  state: TrainState          # freshly initialised, placed on the mesh
  state_sharding: object
  train_step: object         # jitted (state, batch, rng) -> (state, metrics)
  eval_step: object          # jitted (state, batch) -> per-example outputs


NONFINITE_MODES = ('stop', 'skip')


def _check_train_config(config, mesh):
  """Fails early, naming the field, on settings the step cannot honour."""
  microbatches, devices = config.train.microbatches, mesh.devices.size
  if microbatches < 1 or config.train.batch_size % (microbatches * devices):
    raise ValueError(f'train.batch_size={config.train.batch_size} must be divisible by '
                     f'train.microbatches={microbatches} x the {devices} devices of the mesh')
  if config.train.nonfinite not in NONFINITE_MODES:
    raise ValueError(f'train.nonfinite={config.train.nonfinite!r} is not one of '
                     f'{NONFINITE_MODES}')


def build_experiment(config, dataset: data.Dataset | None = None) -> Experiment:
  """Builds everything from `config`; `dataset` replaces `data.load(config.data)`
  (the benchmarks time the real steps on synthetic images of any size)."""
  if config.compile.cache_dir:
    jax.config.update('jax_compilation_cache_dir', config.compile.cache_dir)
  dataset = dataset or data.load(config.data)
  task = dataset.task
  mesh = parallel.make_mesh(config.mesh)
  _check_train_config(config, mesh)
  model = models.build(config.model, task)
  optimizer = make_optimizer(config.optim, config.train.steps)
  # Parameters are drawn with XLA's RngBitGenerator ('rbg'): the same numbers for a
  # seed on a given backend, and on a CPU the initialisation of a ResNet-18 compiles
  # in 4 s where threefry's takes 12 s.
  init_rng = jax.random.key(config.seed, impl='rbg')
  example = {key: jnp.zeros((1,) + spec.shape, spec.dtype) for key, spec in task.inputs.items()}

  def init():
    variables = model.init({'params': init_rng, 'dropout': init_rng}, example, train=False)
    return TrainState.create(apply_fn=model.apply, params=variables['params'], tx=optimizer,
                             batch_stats=variables.get('batch_stats'))

  replicated = parallel.replicated(mesh)
  state_sharding = parallel.state_shardings(jax.eval_shape(init), mesh,
                                            config.mesh.fsdp_min_size)
  state = jax.jit(init, out_shardings=state_sharding)()
  batch_sharding = parallel.batch_sharding(mesh)
  weights = jnp.asarray(steps.class_weights(task, config.train.class_weights))
  train_step = jax.jit(
      functools.partial(steps.train_step, task=task, weights=weights,
                        label_smoothing=config.train.label_smoothing,
                        microbatches=config.train.microbatches,
                        skip_nonfinite=config.train.nonfinite == 'skip'),
      in_shardings=(state_sharding, batch_sharding, replicated),
      out_shardings=(state_sharding, replicated), donate_argnums=0)
  eval_step = jax.jit(functools.partial(steps.eval_step, task=task),
                      in_shardings=(state_sharding, batch_sharding), out_shardings=batch_sharding)
  return Experiment(config, dataset, mesh, state, state_sharding, train_step, eval_step)


def device_batch(batch):
  """The keys that go to the devices (indices as int32: JAX runs without x64)."""
  return {**batch, 'index': batch['index'].astype(np.int32)}


def evaluate(experiment: Experiment, state, split: str) -> tuple[dict, dict]:
  """Runs the eval step over every example of `split` once; returns (metrics, outputs)."""
  eval_batch_size = experiment.config.data.eval_batch_size
  local_size = parallel.local_batch_size(eval_batch_size, experiment.mesh)
  gathered = []
  for batch in pipeline.eval_batches(experiment.dataset.sources[split], experiment.dataset.task,
                                     batch_size=local_size, process_index=jax.process_index(),
                                     process_count=jax.process_count()):
    global_batch = parallel.to_global(device_batch(batch), experiment.mesh)
    outputs = experiment.eval_step(state, global_batch)
    gathered.append(parallel.to_host({**outputs, **{k: global_batch[k] for k in
                                                    ('label', 'mask', 'index')}}))
  outputs = {key: np.concatenate([g[key] for g in gathered]) for key in gathered[0]}
  return metrics.classification_metrics(outputs, experiment.dataset.task), outputs


def _write_predictions(path, outputs, task):
  keep = outputs['mask'] > 0
  header = ['index', 'label'] + [f'prob_{i}' for i in range(task.num_classes)]
  rows = [','.join(header)]
  labels = outputs['label'][keep].reshape(int(keep.sum()), -1)
  for index, label, probs in zip(outputs['index'][keep], labels, outputs['probs'][keep]):
    rows.append(','.join([str(int(index)), ' '.join(str(int(v)) for v in label)] +
                         [f'{p:.8g}' for p in probs]))
  files.write_text_atomic(path, '\n'.join(rows) + '\n')


def restore_checkpoint(experiment: Experiment, workdir, which: str = 'best'):
  """(state, step, meta) of `which` checkpoint of `workdir`: 'best' (by validation
  AUC), 'latest', or a step number kept in `checkpoints/` or `best/`."""
  workdir = pathlib.Path(workdir)
  if which not in ('best', 'latest') and not which.isdigit():
    raise ValueError(f"--checkpoint={which!r}: expected 'best', 'latest' or a step number")
  folders = {'best': ['best'], 'latest': ['checkpoints']}.get(which, ['checkpoints', 'best'])
  for folder in folders:
    if not (workdir / folder).is_dir():
      continue
    manager = checkpoint.Checkpoints(workdir / folder, read_only=True)
    steps_kept = manager.all_steps()
    step = (max(steps_kept, default=None) if not which.isdigit()
            else int(which) if int(which) in steps_kept else None)
    if step is not None:
      abstract = checkpoint.abstract_like(experiment.state, experiment.state_sharding)
      state, meta = manager.restore(step, abstract)
      manager.close()
      return state, step, meta
    manager.close()
  raise FileNotFoundError(f'{workdir} holds no {which} checkpoint (looked in '
                          f'{", ".join(folders)}): train first')


def evaluate_checkpoint(experiment: Experiment, workdir, split: str = 'test',
                        which: str = 'best') -> dict:
  """Evaluates `which` checkpoint of `workdir` on `split` (operating points chosen
  on the validation split) and writes `eval/<split>/` (for the best checkpoint,
  else `eval/<split>-<which>/`): metrics.json, predictions.csv, the plots,
  report.md and saliency overlays. Returns the metrics."""
  config, task = experiment.config, experiment.dataset.task
  state, step, meta = restore_checkpoint(experiment, workdir, which)
  values, outputs = evaluate(experiment, state, split)
  val_outputs = outputs if split == 'val' else evaluate(experiment, state, 'val')[1]
  result = {'split': split, 'checkpoint': which, 'step': step,
            'best_validation_auc': meta['best_metric'], 'data': config.data.name,
            'model': config.model.name, 'num_params': count_params(state),
            'confidence': config.eval.confidence, **values,
            **evaluation.clinical_report(outputs, val_outputs, task, config.eval)}
  if jax.process_index() == 0:
    out_dir = pathlib.Path(workdir) / 'eval' / (split if which == 'best' else f'{split}-{which}')
    _write_predictions(out_dir / 'predictions.csv', outputs, task)
    report.write_report(result, outputs, task, config.eval, out_dir)
    if config.explain.num_images:
      write_saliency(experiment, state, outputs, result, out_dir / 'saliency')
    files.write_json_atomic(out_dir / 'metrics.json', result)
  return result


def saliency_options(config) -> dict:
  """Keyword arguments of every saliency method, from `config.explain`."""
  explain_config = config.explain
  return {'rng': jax.random.fold_in(jax.random.key(config.seed), 2),
          'num_samples': explain_config.smoothgrad_samples,
          'noise': explain_config.smoothgrad_noise, 'steps': explain_config.ig_steps,
          'layer': explain_config.layer or explain.GRAD_CAM_LAYERS.get(config.model.name)}


def saliency_methods(config) -> list[str]:
  """The configured methods this model supports (Grad-CAM needs a tapped CNN/ResNet)."""
  methods = [m.strip() for m in config.explain.methods.split(',') if m.strip()]
  unknown = sorted(set(methods) - set(explain.METHODS))
  if unknown:
    raise ValueError(f'explain.methods: {unknown} not among {explain.METHODS}')
  if config.model.name not in explain.GRAD_CAM_LAYERS:
    methods = [m for m in methods if m != 'grad_cam']
  return methods


def write_saliency(experiment: Experiment, state, outputs, result, out_dir):
  """Saliency overlays of `config.explain.num_images` examples, the informative cases first."""
  config, task = experiment.config, experiment.dataset.task
  chosen = evaluation.saliency_selection(outputs, task, result, config.eval,
                                         config.explain.num_images)
  if not chosen:
    return
  source = experiment.dataset.sources[result['split']]
  images = pipeline.normalise_image(
      sources.read_batch(source, [position for position, _, _ in chosen])['image'])
  classes = np.asarray([target for _, _, target in chosen])
  variables = steps.model_variables(state)
  options = saliency_options(config)
  maps = {method: np.asarray(explain.saliency(method, state.apply_fn, variables, images,
                                              classes, **options))
          for method in saliency_methods(config)}
  captions = [f'{category} #{position} (explaining "{task.label_names[target]}")'
              for position, category, target in chosen]
  report.write_saliency_overlays(images, maps, captions, out_dir)


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
  best = checkpoint.Checkpoints(workdir / 'best', max_to_keep=1, best_metric=BEST_METRIC)
  batches = iter(pipeline.train_batches(
      experiment.dataset.sources['train'], task, config.data,
      global_batch_size=config.train.batch_size, seed=config.seed,
      process_index=jax.process_index(), process_count=jax.process_count()))
  state = experiment.state
  meta = {'best_metric': -math.inf, 'best_step': None, 'train_seconds': 0.0}
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
        if step % config.train.eval_every == 0 or last:
          flush(step)
          values, _ = evaluate(experiment, state, 'val')
          writer.write(step, 'val', values)
          if values[BEST_METRIC] > meta['best_metric'] or meta['best_step'] is None:
            meta.update(best_metric=values[BEST_METRIC], best_step=step)
            best.save(step, state, {**meta}, metrics={BEST_METRIC: values[BEST_METRIC]})
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
             'best_step': meta['best_step'], 'best_validation_auc': meta['best_metric'],
             'compile_seconds': compile_seconds, 'skipped_steps': skipped}
  if jax.process_index() == 0:
    files.write_json_atomic(workdir / 'train_summary.json', summary)
  return summary


def count_params(state) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(state.params)))

