"""Times medjax's real train step (the one the experiment compiles) on one batch.

  python -m benchmarks.train_step --config=configs/pneumonia_resnet18.py \\
      --config.model.resnet.stem=cifar --steps=10

Prints one JSON line: the compile seconds of the step (trace + XLA compile, as
the train loop logs them), median step seconds over `--steps` steps after one
warm-up step, and images per second. The batch is a
real training batch; data loading is not timed.
"""
import json
import statistics
import sys
import time

import jax
from absl import app, flags
from ml_collections import config_flags

from medjax import host_memory, parallel
from medjax.data import pipeline
from medjax.train import loop

_CONFIG = config_flags.DEFINE_config_file('config', None, 'experiment config', lock_config=True)
_STEPS = flags.DEFINE_integer('steps', 10, 'timed steps after the warm-up')


def main(_):
  host_memory.reuse_freed_memory()  # as the experiment launcher does
  config = _CONFIG.value
  experiment = loop.build_experiment(config)
  task = experiment.dataset.task
  loader = pipeline.train_batches(experiment.dataset.sources['train'], task, config.data,
                                  global_batch_size=config.train.batch_size, seed=config.seed)
  batch = parallel.to_global(loop.device_batch(next(iter(loader))), experiment.mesh)
  state, rng = experiment.state, jax.random.key(0)
  started = time.perf_counter()
  train_step = experiment.train_step.lower(state, batch, rng).compile()
  compile_seconds = time.perf_counter() - started
  state, metrics = train_step(state, batch, rng)
  jax.block_until_ready(metrics)
  times = []
  for _ in range(_STEPS.value):
    started = time.perf_counter()
    state, metrics = train_step(state, batch, rng)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - started)
  median = statistics.median(times)
  print(json.dumps({
      'model': config.model.name, 'stem': config.model.resnet.stem,
      'conv_impl': config.model.conv_impl, 'dtype': config.model.dtype,
      'image_size': config.data.image_size, 'batch_size': config.train.batch_size,
      'mesh': dict(experiment.mesh.shape), 'compile_seconds': round(compile_seconds, 2),
      'median_step_seconds': round(median, 4),
      'images_per_second': round(config.train.batch_size / median, 1)}))


if __name__ == '__main__':
  sys.exit(app.run(main))
