"""medjax's real train and eval steps side by side with a PyTorch peer.

  python -m benchmarks.peer                      # the standard set (about 25 min on 2 cores)
  python -m benchmarks.peer --models=cnn,resnet18 --sizes=28,64 --steps=10 --repeats=2
  python -m benchmarks.peer --models=resnet1d,inception_time,signal_transformer  # the ECG models
  # On a GPU (PyTorch with CUDA), MFU against the card's dense bfloat16 peak (H100 SXM: 989 TFLOP/s):
  python -m benchmarks.peer --models=resnet50 --sizes=224 --dtype=bfloat16 --peak_gflops=989000

For each image model and size, and each signal model and ECG data set (`--signals`:
ECG5000's 140-sample beats; MIT-BIH's 2-lead 256-sample beats with their 8 RR
features), it builds the step the experiment compiles (`setup.build_experiment` on a
synthetic data set of that shape: same model, optimiser and loss as the repo's
config for it) and the same architecture in PyTorch (`benchmarks.torch_peers`,
parameter counts asserted equal). After warm-up the two are timed in turn,
`--repeats` times, each a median over `--steps` steps; PyTorch gets whichever memory
format (NCHW or channels-last) was faster in its warm-up. Reported per row: median
examples/s of both and their ratio (beside it, the range of the ratios of the repeats
taken one by one: this machine's drift between blocks, which one ratio hides), eval
examples/s, the first-step compile time (trace + XLA compile), the step's XLA buffer
footprint (arguments + outputs + temporaries, from `memory_analysis`), and the achieved
GFLOP/s (XLA's cost analysis) against this machine's matmul peak in the compute dtype,
measured in the same run (or `--peak_gflops`, a spec-sheet peak, for MFU). On an
accelerator medjax uses `lax.conv` (im2col is a CPU lever) and PyTorch runs on CUDA when
it can, under autocast for bfloat16. The input pipeline is timed alone on the real
PneumoniaMNIST training split with augmentation. Writes `--out` (JSON) and
prints a Markdown table.
"""
import json
import pathlib
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
from absl import app, flags
from torch.nn import functional as F

from benchmarks import torch_peers
from benchmarks.timing import median_seconds
from configs import (breast_cnn, breast_vit, ecg5000_inception, ecg5000_resnet1d,
                     ecg5000_transformer, mitdb_inception, mitdb_resnet1d, mitdb_transformer,
                     pneumonia_resnet18)
from medjax import data, host_memory, parallel
from medjax.data import pipeline
from medjax.data.task import InputSpec, Task
from medjax.train import setup

_MODELS = flags.DEFINE_list('models', ['cnn', 'resnet18', 'resnet50', 'vit', 'resnet1d',
                                       'inception_time', 'signal_transformer'], 'models to time')
_SIZES = flags.DEFINE_list('sizes', ['28', '64', '128'], 'image sizes (square, 1 channel)')
_SIGNALS = flags.DEFINE_list('signals', ['ecg5000', 'mitdb'], 'ECG input shapes for the '
                             'signal models')
_STEPS = flags.DEFINE_integer('steps', 10, 'timed steps per repeat (the median is kept)')
_REPEATS = flags.DEFINE_integer('repeats', 2, 'alternations of medjax and PyTorch')
_OUT = flags.DEFINE_string('out', 'benchmarks/results/peer.json', 'JSON results')
_DTYPE = flags.DEFINE_enum('dtype', 'float32', ['float32', 'bfloat16'], 'compute dtype')
_PEAK = flags.DEFINE_float('peak_gflops', 0.0, 'peak GFLOP/s for the % column; 0: measure '
                           'the matmul peak in --dtype')

# image model -> (the repo config it comes from, overrides)
MODELS = {
    'cnn': (breast_cnn, {}),
    'resnet18': (pneumonia_resnet18, {}),
    'resnet50': (pneumonia_resnet18, {'model.resnet.depth': 50}),
    'vit': (breast_vit, {}),
}
# signal model -> ECG data set -> the repo config
SIGNAL_MODELS = {
    'resnet1d': {'ecg5000': ecg5000_resnet1d, 'mitdb': mitdb_resnet1d},
    'inception_time': {'ecg5000': ecg5000_inception, 'mitdb': mitdb_inception},
    'signal_transformer': {'ecg5000': ecg5000_transformer, 'mitdb': mitdb_transformer},
}
# ECG data set -> (label, its inputs); five AAMI / ECG5000 classes each
SIGNAL_INPUTS = {
    'ecg5000': ('ECG5000 140x1', {'signal': InputSpec('signal', (140, 1), sampling_rate=140)}),
    'mitdb': ('MIT-BIH 256x2 + 8 RR', {'signal': InputSpec('signal', (256, 2), sampling_rate=360),
                                       'tabular': InputSpec('tabular', (8,))}),
}
ECG_CLASSES = 5


def benchmark_config(model: str, size: int, dtype: str = 'float32'):
  """The repo config of image model `model`, adapted to `size`: batch 128 at 28 px and
  64 above; ResNets keep the configs' 'stride2' stem at 28 px and take torchvision's
  'imagenet' stem above; the ViT's patch grows with the image (49 or 64 tokens)."""
  module, overrides = MODELS[model]
  config = module.get_config()
  config.update_from_flattened_dict({
      **overrides, 'data.image_size': size, 'train.batch_size': 128 if size <= 28 else 64,
      'train.progress_bar': False, 'model.dtype': dtype})
  if size > 28:
    config.model.resnet.stem = 'imagenet'
    config.model.vit.patch_size = {64: 8, 128: 16, 224: 32}.get(size,
                                                                 config.model.vit.patch_size)
  return config


def benchmark_cases(models, sizes, signals, dtype):
  """(model, input label, config, synthetic task) for every row to time."""
  cases = []
  for model in models:
    if model in MODELS:
      for size in sizes:
        task = Task(f'synthetic{size}', 'binary', ('negative', 'positive'), (500, 500),
                    {'image': InputSpec('image', (size, size, 1))})
        cases.append((model, f'{size} px', benchmark_config(model, size, dtype), task))
    else:
      for signal in signals:
        label, inputs = SIGNAL_INPUTS[signal]
        config = SIGNAL_MODELS[model][signal].get_config()
        config.update_from_flattened_dict({'train.progress_bar': False, 'model.dtype': dtype})
        task = Task(f'synthetic_{signal}', 'multiclass', tuple('ABCDE'), (200,) * ECG_CLASSES,
                    inputs)
        cases.append((model, label, config, task))
  for _, _, config, _ in cases:
    if jax.default_backend() != 'cpu':
      config.model.conv_impl = 'lax'
  return cases


def synthetic_batch(task: Task, batch_size: int, seed: int = 0) -> dict:
  rng = np.random.default_rng(seed)
  batch = {key: rng.uniform(-1, 1, (batch_size, *spec.shape)).astype(np.float32)
           for key, spec in task.inputs.items()}
  return {**batch, 'label': (np.arange(batch_size) % task.num_classes).astype(np.int32),
          'index': np.arange(batch_size, dtype=np.int32),
          'mask': np.ones(batch_size, np.float32)}


def matmul_peak_gflops(dtype: str, n: int = 2048) -> float:
  """This machine's matmul throughput in `dtype`: the ceiling for the GFLOP/s column."""
  a = jnp.ones((n, n), dtype)
  dot = jax.jit(jnp.dot)
  return 2 * n**3 / median_seconds(lambda: jax.block_until_ready(dot(a, a)), 10) / 1e9


class MedjaxStep:
  """The experiment's jitted train and eval steps, compiled ahead of time."""

  def __init__(self, config, task, batch):
    experiment = setup.build_experiment(config, data.Dataset(task=task, sources={}))
    self.params = setup.count_params(experiment.state)
    self.batch = parallel.to_global(batch, experiment.mesh)
    self.state, self.rng = experiment.state, jax.random.key(0)
    started = time.perf_counter()
    self.train_step = experiment.train_step.lower(self.state, self.batch, self.rng).compile()
    self.compile_seconds = time.perf_counter() - started
    self.eval_step = experiment.eval_step.lower(self.state, self.batch).compile()
    self.flops = self.train_step.cost_analysis()['flops']
    memory = self.train_step.memory_analysis()
    self.buffer_bytes = (memory.argument_size_in_bytes + memory.output_size_in_bytes -
                         memory.alias_size_in_bytes + memory.temp_size_in_bytes)

  def train(self):
    self.state, metrics = self.train_step(self.state, self.batch, self.rng)
    jax.block_until_ready(metrics)

  def eval(self):
    jax.block_until_ready(self.eval_step(self.state, self.batch))


class TorchStep:
  """The same architecture, optimiser and cross-entropy loss in PyTorch (eager, oneDNN;
  the synthetic classes are balanced, so medjax's class weights are all 1)."""

  def __init__(self, config, task, batch):
    self.device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    self.autocast_dtype = torch.bfloat16 if config.model.dtype == 'bfloat16' else None
    self.model = torch_peers.build(config.model, task).to(self.device)
    self.params = torch_peers.param_count(self.model)
    optim = config.optim
    optimizer = torch.optim.AdamW if optim.name == 'adamw' else torch.optim.Adam
    self.optimizer = optimizer(self.model.parameters(), lr=optim.learning_rate,
                               weight_decay=optim.weight_decay)
    self.label_smoothing = config.train.label_smoothing
    self.inputs = {key: torch_peers.to_torch(batch[key]).to(self.device) for key in task.inputs}
    self.labels = torch.from_numpy(batch['label']).long().to(self.device)

  def use_memory_format(self, memory_format):
    """NCHW or channels-last for an image model (signals have one layout)."""
    if 'image' in self.inputs:
      self.model.to(memory_format=memory_format)
      self.inputs['image'] = self.inputs['image'].contiguous(memory_format=memory_format)

  def _forward(self):
    with torch.autocast(self.device.type, dtype=self.autocast_dtype,
                        enabled=self.autocast_dtype is not None):
      return self.model(self.inputs)

  def _wait(self):
    if self.device.type == 'cuda':
      torch.cuda.synchronize()

  def train(self):
    self.model.train()
    self.optimizer.zero_grad(set_to_none=True)
    loss = F.cross_entropy(self._forward().float(), self.labels,
                           label_smoothing=self.label_smoothing)
    loss.backward()
    self.optimizer.step()
    self._wait()

  def eval(self):
    self.model.eval()
    with torch.no_grad():
      self._forward()
    self._wait()


def pick_memory_format(peer: TorchStep, warmup_steps: int = 3) -> str:
  """Leaves `peer` in its faster memory format; returns that format's name."""
  formats = {'nchw': torch.contiguous_format}
  if 'image' in peer.inputs:
    formats['channels_last'] = torch.channels_last
  timings = {}
  for name, memory_format in formats.items():
    peer.use_memory_format(memory_format)
    timings[name] = median_seconds(peer.train, warmup_steps)
  best = min(timings, key=timings.get)
  peer.use_memory_format(formats[best])
  return best


def compare(model: str, input_label: str, config, task: Task, steps_per_repeat: int,
            repeats: int, peak: float) -> dict:
  batch_size = config.train.batch_size
  batch = synthetic_batch(task, batch_size)
  ours, peer = MedjaxStep(config, task, batch), TorchStep(config, task, batch)
  if ours.params != peer.params:
    raise AssertionError(f'{model} on {input_label}: medjax has {ours.params} parameters, '
                         f'the PyTorch peer {peer.params}')
  ours.train()
  ours.eval()
  peer_format = pick_memory_format(peer)
  peer.eval()
  train_times = {'medjax': [], 'torch': []}
  eval_times = {'medjax': [], 'torch': []}
  for _ in range(repeats):
    for name, runner in (('medjax', ours), ('torch', peer)):
      train_times[name].append(median_seconds(runner.train, steps_per_repeat, warmup=0))
      eval_times[name].append(median_seconds(runner.eval, max(3, steps_per_repeat // 2),
                                             warmup=0))
  train_seconds = {name: statistics.median(times) for name, times in train_times.items()}
  eval_seconds = {name: statistics.median(times) for name, times in eval_times.items()}
  gflops = ours.flops / train_seconds['medjax'] / 1e9
  return {
      'model': model, 'input': input_label, 'batch_size': batch_size, 'params': ours.params,
      'dtype': config.model.dtype, 'torch_device': peer.device.type,
      'stem': config.model.resnet.stem if config.model.name == 'resnet' else None,
      'conv_impl': config.model.conv_impl, 'torch_memory_format': peer_format,
      'medjax_examples_per_second': batch_size / train_seconds['medjax'],
      'torch_examples_per_second': batch_size / train_seconds['torch'],
      'ratio': train_seconds['torch'] / train_seconds['medjax'],
      'repeat_ratios': [torch_seconds / medjax_seconds for torch_seconds, medjax_seconds
                        in zip(train_times['torch'], train_times['medjax'])],
      'medjax_eval_examples_per_second': batch_size / eval_seconds['medjax'],
      'torch_eval_examples_per_second': batch_size / eval_seconds['torch'],
      'compile_seconds': ours.compile_seconds, 'xla_buffer_mib': ours.buffer_bytes / 2**20,
      'gflops_per_second': gflops, 'fraction_of_peak': gflops / peak,
      'repeat_step_seconds': train_times,
  }


def input_pipeline_images_per_second(batches: int = 200) -> float:
  """PneumoniaMNIST's augmented training stream, as the loop consumes it (host batch
  -> device arrays), alone on the machine: `batches` batches after the first, over
  their total time. (Not a median of single fetches: the loader's threads prepare
  batches ahead in bursts, so most fetches find one ready and the median overstates
  the rate several times.)"""
  config = pneumonia_resnet18.get_config()
  dataset = data.load(config.data)
  mesh = parallel.make_mesh(config.mesh)
  stream = iter(pipeline.train_batches(dataset.sources['train'], dataset.task, config.data,
                                       global_batch_size=config.train.batch_size,
                                       seed=config.seed))

  def next_batch():
    jax.block_until_ready(parallel.to_global(setup.device_batch(next(stream)), mesh))

  next_batch()
  started = time.perf_counter()
  for _ in range(batches):
    next_batch()
  return batches * config.train.batch_size / (time.perf_counter() - started)


def _ratio_range(row) -> str:
  ratios = row['repeat_ratios']
  return f' ({min(ratios):.2f}-{max(ratios):.2f})' if len(ratios) > 1 else ''


def markdown_table(rows, peak, peak_source, pipeline_rate) -> str:
  lines = [
      f'Peak ({peak_source}): {peak:.0f} GFLOP/s. Input pipeline '
      f'(PneumoniaMNIST train, augmented, to device): {pipeline_rate:.0f} images/s.', '',
      '| model | input | batch | medjax ex/s | PyTorch ex/s | medjax / PyTorch (repeats) | '
      'eval ex/s medjax / PyTorch | compile s | XLA buffers MiB | GFLOP/s (% of peak) |',
      '|---|---|---|---|---|---|---|---|---|---|']
  for row in rows:
    name = row['model'] + (f' ({row["stem"]})' if row['stem'] else '')
    lines.append(
        f'| {name} | {row["input"]} | {row["batch_size"]} | '
        f'{row["medjax_examples_per_second"]:.1f} | {row["torch_examples_per_second"]:.1f} '
        f'({row["torch_memory_format"]}) | {row["ratio"]:.2f}{_ratio_range(row)} | '
        f'{row["medjax_eval_examples_per_second"]:.0f} / {row["torch_eval_examples_per_second"]:.0f}'
        f' | {row["compile_seconds"]:.1f} | {row["xla_buffer_mib"]:.0f} | '
        f'{row["gflops_per_second"]:.1f} ({100 * row["fraction_of_peak"]:.0f}%) |')
  return '\n'.join(lines)


def main(argv):
  del argv
  host_memory.reuse_freed_memory()  # as the experiment launcher does
  unknown = sorted(set(_MODELS.value) - set(MODELS) - set(SIGNAL_MODELS))
  if unknown:
    raise app.UsageError(f'--models: unknown {unknown}; known: '
                         f'{sorted(MODELS) + sorted(SIGNAL_MODELS)}')
  unknown = sorted(set(_SIGNALS.value) - set(SIGNAL_INPUTS))
  if unknown:
    raise app.UsageError(f'--signals: unknown {unknown}; known: {sorted(SIGNAL_INPUTS)}')
  torch.manual_seed(0)
  dtype = _DTYPE.value
  if _PEAK.value:
    peak, peak_source = _PEAK.value, '--peak_gflops'
  else:
    peak, peak_source = matmul_peak_gflops(dtype), f'{dtype} matmul, 2048^2, jnp.dot'
  pipeline_rate = input_pipeline_images_per_second()
  rows = []
  for case in benchmark_cases(_MODELS.value, map(int, _SIZES.value), _SIGNALS.value, dtype):
    row = compare(*case, _STEPS.value, _REPEATS.value, peak)
    print(json.dumps({k: v for k, v in row.items() if k != 'repeat_step_seconds'}),
          file=sys.stderr, flush=True)
    rows.append(row)
  out = pathlib.Path(_OUT.value)
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps({
      'peak_gflops': peak, 'peak_source': peak_source,
      'input_pipeline_images_per_second': pipeline_rate, 'backend': jax.default_backend(),
      'devices': jax.device_count(), 'jax': jax.__version__, 'torch': torch.__version__,
      'torch_threads': torch.get_num_threads(), 'rows': rows}, indent=1) + '\n')
  print(markdown_table(rows, peak, peak_source, pipeline_rate))


if __name__ == '__main__':
  app.run(main)
