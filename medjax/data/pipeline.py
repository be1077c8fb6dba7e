"""Grain input pipelines over random-access sources: training and evaluation.

Training: an endless, seeded shuffle of the training split, augmented per
example and batched, the same global batches for any number of processes (the
iterator's state is saved with each checkpoint). Evaluation: every example of a
split exactly once, in file order, the last batch padded and marked with `mask
== 0`.
"""
import os
import sys

import grain
import numpy as np

from medjax.data import augment
from medjax.data.task import Task


def normalise_image(image: np.ndarray) -> np.ndarray:
  """uint8 pixels (or floats in [0, 1] after augmentation) -> model inputs in [-1, 1]."""
  if image.dtype == np.uint8:
    image = image.astype(np.float32) / 255.0
  return (image.astype(np.float32) - 0.5) / 0.5


def to_model_inputs(element, task: Task, augment_config=None, rng=None):
  """One decoded example -> the batch vocabulary: float image in [-1, 1], label."""
  image = np.asarray(element['image'])
  if rng is not None and augment_config is not None:
    image = augment.augment_image(image.astype(np.float32) / 255.0, rng, augment_config)
  label = np.asarray(element['label'])
  return {
      'image': normalise_image(image),
      'label': label.astype(np.float32) if task.multilabel else label.astype(np.int32),
      'index': np.asarray(element['index'], np.int64),
      'mask': np.float32(1.0),
  }


class _Preprocess(grain.transforms.Map):
  def __init__(self, task):
    self._task = task

  def map(self, element):
    return to_model_inputs(element, self._task)


class _AugmentAndPreprocess(grain.transforms.RandomMap):
  def __init__(self, task, augment_config):
    self._task = task
    self._augment = augment_config

  def random_map(self, element, rng: np.random.Generator):
    return to_model_inputs(element, self._task, self._augment, rng)


def train_batches(source, task: Task, data_config, *, global_batch_size: int, seed: int,
                  process_index: int = 0, process_count: int = 1):
  """This process's part of an endless stream of global training batches.

  The stream is defined globally: epoch e is a permutation of the training set
  (seeded by `seed` and e), position g of the stream is augmented with a
  generator seeded by g, and global batch b is positions [bB, (b + 1)B), of which
  process p takes the p-th of P equal blocks. So 1 or P
  processes (and any number of devices) train on the same global batches, and
  the iterator's state (`get_state()`, a small dict) resumes it exactly.

  `data_config.prefetch_batches` batches are prepared ahead, by as many threads (at
  most one per CPU). grain's defaults (16 threads, 500 batches ahead) would fill
  gigabytes at 224 px, and on a small machine they took the CPU from the train step's
  compile: the ResNet-18 step of configs/pneumonia_resnet18.py compiled in about 20 s
  while they ran, against about 12 s alone.
  """
  if global_batch_size % process_count:
    raise ValueError(f'batch size {global_batch_size} is not divisible by the '
                     f'{process_count} processes')
  stream = grain.MapDataset.source(source).shuffle(seed=seed).repeat()
  if augment.is_identity(data_config.augment):
    stream = stream.map(_Preprocess(task))
  else:
    stream = stream.random_map(_AugmentAndPreprocess(task, data_config.augment), seed=seed)
  local_size = global_batch_size // process_count

  def global_position(k):  # local position k -> its position in the global stream
    return (k // local_size) * global_batch_size + process_index * local_size + k % local_size

  local = grain.MapDataset.range(sys.maxsize // global_batch_size * local_size).map(
      lambda k: stream[global_position(k)])
  ahead = data_config.prefetch_batches
  read_options = grain.ReadOptions(num_threads=min(ahead, os.cpu_count() or 1),
                                   prefetch_buffer_size=ahead)
  return local.batch(local_size, drop_remainder=True).to_iter_dataset(read_options)


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
    examples = [to_model_inputs(source[int(i)], task) for i in chunk]
    padding = batch_size - len(examples)
    if padding:
      filler = to_model_inputs(source[0], task)
      filler['mask'] = np.float32(0.0)
      examples += [filler] * padding
    yield {key: np.stack([example[key] for example in examples]) for key in examples[0]}
