"""Times medjax's real train step (the one the experiment compiles) on one batch.

  python -m benchmarks.train_step --config=configs/pneumonia_resnet18.py \\
      --config.model.resnet.stem=cifar --steps=10

Prints one JSON line: the compile seconds of the step (trace + lowering + XLA
compile, as the train loop logs them, and each part), median step seconds over
`--steps` steps after one warm-up step, and images per second. With
`TF_CPP_MIN_LOG_LEVEL=0 TF_CPP_VMODULE=cpu_compiler=1` XLA also logs its own split
of the compile (HLO passes, then LLVM code generation: "Compiling ... using JIT"). The batch is a
real training batch; data loading is not timed.
"""
import json
import re
import statistics
import sys
import time

import jax
from absl import app, flags
from ml_collections import config_flags

from medjax import host_memory, parallel
from medjax.data import pipeline
from medjax.train import setup

_CONFIG = config_flags.DEFINE_config_file('config', None, 'experiment config', lock_config=True)
_STEPS = flags.DEFINE_integer('steps', 10, 'timed steps after the warm-up')


def main(_):
  host_memory.reuse_freed_memory()  # as the experiment launcher does
  config = _CONFIG.value
  experiment = setup.build_experiment(config)
  task = experiment.dataset.task
  loader = pipeline.train_batches(experiment.dataset.sources['train'], task, config.data,
                                  global_batch_size=config.train.batch_size, seed=config.seed)
  batch = parallel.to_global(setup.device_batch(next(iter(loader))), experiment.mesh)
  state, rng = experiment.state, jax.random.key(0)
  trace_started = time.perf_counter()
  traced = experiment.train_step.trace(state, batch, rng)
  traced_at = time.perf_counter()
  lowered = traced.lower()
  lowered_at = time.perf_counter()
  train_step = lowered.compile()
  compiled_at = time.perf_counter()
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
      'mesh': dict(experiment.mesh.shape), 'compile_seconds': round(compiled_at - trace_started, 2),
      'trace_seconds': round(traced_at - trace_started, 2),
      'lower_seconds': round(lowered_at - traced_at, 2),
      'xla_compile_seconds': round(compiled_at - lowered_at, 2),
      # Each fusion is a kernel LLVM generates: most of the XLA compile time on a CPU.
      'xla_fusions': len(re.findall(r'kind=k[A-Z]', train_step.as_text())),
      'median_step_seconds': round(median, 4),
      'images_per_second': round(config.train.batch_size / median, 1)}))


if __name__ == '__main__':
  sys.exit(app.run(main))
