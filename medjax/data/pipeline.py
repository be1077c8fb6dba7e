"""Grain input pipelines over random-access sources: training and evaluation.

Training: an endless, seeded shuffle of the training split, batched and
augmented a batch at a time, the same global batches for any number of processes
(the iterator's state is saved with each checkpoint). Evaluation: every example of a
split exactly once, in file order, the last batch padded and marked with `mask
== 0`.
"""
import functools
import os
import sys

import grain
import numpy as np

from medjax.data import sources
from medjax.data.modalities import MODALITIES
from medjax.data.task import Task


def model_inputs(examples: dict, task: Task, augment_config=None,
                 augment_params=None) -> dict[str, np.ndarray]:
  """Stored inputs stacked per feature -> model inputs, each prepared by its modality
  (augmented with `augment_params[key]` where given). An optional input gets its
  `<key>_present` flag (1 where the examples do not say otherwise)."""
  batch = {}
  for key, spec in task.inputs.items():
    params = (augment_params or {}).get(key)
    batch[key] = MODALITIES[spec.modality].prepare(examples[key], spec, augment_config, params)
    present = f'{key}_present'
    if present in examples or spec.optional:
      batch[present] = np.asarray(examples.get(present, np.ones(len(batch[key]))), np.float32)
  return batch


def draw_augmentation(rng: np.random.Generator, count: int, task: Task, augment_config) -> dict:
  """Random augmentation parameters of `count` examples for every augmented input."""
  params = {}
  for key, spec in task.inputs.items():
    modality = MODALITIES[spec.modality]
    if modality.augmenting(augment_config):
      params[key] = modality.draw(rng, count, augment_config, spec)
  return params


def to_model_batch(examples: dict, task: Task, augment_config=None,
                   augment_params=None) -> dict[str, np.ndarray]:
  """Decoded examples stacked per feature -> the batch vocabulary: model inputs
  (augmented when parameters are given), labels, indices, mask 1."""
  labels = examples['label']
  return {
      **model_inputs(examples, task, augment_config, augment_params),
      'label': labels.astype(np.float32) if task.multilabel else labels.astype(np.int32),
      'index': examples['index'].astype(np.int64),
      'mask': np.ones(len(labels), np.float32),
  }


def train_batches(source, task: Task, data_config, *, global_batch_size: int, seed: int,
                  process_index: int = 0, process_count: int = 1):
  """This process's part of an endless stream of global training batches.

  The stream is defined globally: epoch e is a permutation of the training set
  drawn from a generator seeded by (seed, e); global batch b is positions
  [bB, (b + 1)B) of the stream, augmented with parameters drawn for all B examples
  from a generator seeded by (seed, b); process p takes the p-th of P equal blocks
  of it. So 1 or P processes (and any number of devices) train on the same global
  batches, and the iterator's state (`get_state()`, a small dict) resumes it exactly.

  `data_config.prefetch_batches` batches are prepared ahead, by as many threads (at
  most one per CPU). grain's defaults (16 threads, 500 batches ahead) would fill
  gigabytes at 224 px, and on a small machine they took the CPU from the train step's
  compile: the ResNet-18 step of configs/pneumonia_resnet18.py compiled in about 20 s
  while they ran, against about 12 s alone.
  """
  if global_batch_size % process_count:
    raise ValueError(f'batch size {global_batch_size} is not divisible by the '
                     f'{process_count} processes')
  num_examples = len(source)
  local_size = global_batch_size // process_count
  mine = slice(process_index * local_size, (process_index + 1) * local_size)
  augmenting = any(MODALITIES[spec.modality].augmenting(data_config.augment)
                   for spec in task.inputs.values())

  @functools.lru_cache(maxsize=2)  # the epochs of the batches being prepared
  def epoch_order(epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(num_examples)

  def local_batch(batch_number: int) -> dict[str, np.ndarray]:
    first = batch_number * global_batch_size + mine.start
    epochs, offsets = np.divmod(np.arange(first, first + local_size), num_examples)
    indices = np.concatenate([epoch_order(epoch)[offsets[epochs == epoch]]
                              for epoch in np.unique(epochs)])
    examples = sources.read_batch(source, indices)
    params = None
    if augmenting:
      rng = np.random.default_rng([seed, batch_number])
      drawn = draw_augmentation(rng, global_batch_size, task, data_config.augment)
      params = {key: {name: values[mine] for name, values in key_params.items()}
                for key, key_params in drawn.items()}
    return to_model_batch(examples, task, data_config.augment, params)

  ahead = data_config.prefetch_batches
  read_options = grain.ReadOptions(num_threads=min(ahead, os.cpu_count() or 1),
                                   prefetch_buffer_size=ahead)
  return grain.MapDataset.range(sys.maxsize // global_batch_size).map(
      local_batch).to_iter_dataset(read_options)


def eval_batches(source, task: Task, *, batch_size: int, process_index: int = 0,
                 process_count: int = 1):
  """Yields this process's evaluation batches; all processes yield the same count.

  Process p takes examples p, p + P, p + 2P, ...; padding rows repeat example 0
  of the split and carry mask 0, so metrics can drop them.
  """
  num_examples = len(source)
  indices = np.arange(process_index, num_examples, process_count)
  per_process = -(-num_examples // process_count)
  num_batches = max(1, -(-per_process // batch_size))
  for start in range(0, num_batches * batch_size, batch_size):
    chunk = indices[start:start + batch_size]
    padding = batch_size - len(chunk)
    batch = to_model_batch(sources.read_batch(source, np.pad(chunk, (0, padding))), task)
    batch['mask'][len(chunk):] = 0.0
    yield batch
