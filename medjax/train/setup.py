"""Everything an experiment is built from its config: data, mesh, model, state, steps.

Training (medjax/train/loop.py), evaluation (medjax/evaluate.py) and prediction
(medjax/predict.py) all start from `build_experiment(config)`.
"""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from medjax import data, metrics, models, parallel, tta
from medjax.data import pipeline
from medjax.data.modalities import MODALITIES
from medjax.config import ConfigError
from medjax.train import mixing, objectives
from medjax.train import step as steps
from medjax.train.state import EmaTrainState, TrainState, make_optimizer


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
  select_metric: str         # the validation metric of the best checkpoint


def _check_train_config(config, mesh, task):
  """Fails early, naming the field, on settings the step cannot honour on this mesh
  and task (the rest of the config was checked before: medjax/config.py)."""
  microbatches, devices = config.train.microbatches, mesh.devices.size
  if config.train.batch_size % (microbatches * devices):
    raise ConfigError(f'train.batch_size={config.train.batch_size} must be divisible by '
                      f'train.microbatches={microbatches} x the {devices} devices of the mesh')
  mixing.check_inputs(config.train, task)
  if config.data.refit and (task.kind == 'multilabel' or task.kind == 'binary' and
                            not config.eval.operating_threshold):
    raise ConfigError(f'data.refit: a {task.kind} task decides at operating points chosen on '
                      'the validation split, which a refit trains on' +
                      (': give the threshold (eval.operating_threshold)'
                       if task.kind == 'binary' else
                       '; refit multi-class, ordinal and binary tasks only'))


def build_experiment(config, dataset: data.Dataset | None = None) -> Experiment:
  """Builds everything from `config`; `dataset` replaces `data.load(config.data)`:
  prediction passes the workdir's stored task with no sources, and the benchmarks
  time the real steps on synthetic inputs of any size."""
  if config.compile.cache_dir:
    jax.config.update('jax_compilation_cache_dir', config.compile.cache_dir)
  dataset = dataset or data.load(config.data)
  task = dataset.task
  tta.views(config.eval.tta, task)  # a view no input has: a ConfigError now, not at validation
  for spec in task.inputs.values():
    modality = MODALITIES[spec.modality]
    if hasattr(modality, 'check_augment'):
      modality.check_augment(config.data.augment, spec)
  mesh = parallel.make_mesh(config.mesh)
  _check_train_config(config, mesh, task)
  select_metric = objectives.select_metric(task, config.train.select_metric,
                                           metrics.metric_names(task))
  model = models.build(config.model, task)
  optimizer = make_optimizer(config.optim, config.optim.schedule_steps or config.train.steps)
  # Parameters are drawn with XLA's RngBitGenerator ('rbg'): the same numbers for a
  # seed on a given backend, and on a CPU the initialisation of a ResNet-18 compiles
  # in 4 s where threefry's takes 12 s.
  init_rng = jax.random.key(config.seed, impl='rbg')
  example = pipeline.model_inputs(
      {key: np.zeros((1,) + spec.shape, spec.dtype) for key, spec in task.inputs.items()}, task)

  def init():
    variables = model.init({'params': init_rng, 'dropout': init_rng}, example, train=False)
    state_class = EmaTrainState if config.train.ema else TrainState
    state = state_class.create(apply_fn=model.apply, params=variables['params'], tx=optimizer,
                               batch_stats=variables.get('batch_stats'))
    if config.train.ema:
      state = state.replace(ema=steps.model_variables(state, state.params))
    return state

  abstract_state = jax.eval_shape(init)
  if config.train.solver == 'ridge':
    from medjax.train import ridge  # it evaluates, and evaluation imports this module
    ridge.check_model(task, abstract_state.params)
  replicated = parallel.replicated(mesh)
  state_sharding = parallel.state_shardings(abstract_state, mesh, config.mesh.fsdp_min_size)
  state = jax.jit(init, out_shardings=state_sharding)()
  batch_sharding = parallel.batch_sharding(mesh)
  weights = jnp.asarray(steps.class_weights(task, config.train.class_weights))
  train_step = jax.jit(
      functools.partial(steps.train_step, task=task, weights=weights,
                        label_smoothing=config.train.label_smoothing,
                        microbatches=config.train.microbatches,
                        skip_nonfinite=config.train.nonfinite == 'skip',
                        ema_decay=config.train.ema_decay,
                        mixup_alpha=config.train.mixup_alpha,
                        cutmix_alpha=config.train.cutmix_alpha),
      in_shardings=(state_sharding, batch_sharding, replicated),
      out_shardings=(state_sharding, replicated), donate_argnums=0)
  eval_step = jax.jit(functools.partial(steps.eval_step, task=task),
                      in_shardings=(state_sharding, batch_sharding), out_shardings=batch_sharding)
  return Experiment(config, dataset, mesh, state, state_sharding, train_step, eval_step,
                    select_metric)


def device_batch(batch):
  """The keys that go to the devices (indices as int32: JAX runs without x64)."""
  return {**batch, 'index': batch['index'].astype(np.int32)}


def count_params(state) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(state.params)))
