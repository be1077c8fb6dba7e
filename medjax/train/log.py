"""Metric logging: JSONL (one object per line) and TensorBoard event files.

Only process 0 writes; the others get a writer that does nothing.
"""
import json
import pathlib

import jax
from tensorboardX import SummaryWriter


class MetricWriter:

  def __init__(self, workdir):
    self._enabled = jax.process_index() == 0
    if self._enabled:
      log_dir = pathlib.Path(workdir) / 'logs'
      log_dir.mkdir(parents=True, exist_ok=True)
      self._jsonl = open(log_dir / 'metrics.jsonl', 'a', encoding='utf-8')
      self._tensorboard = SummaryWriter(str(log_dir / 'tensorboard'))

  def write(self, step: int, prefix: str, scalars: dict):
    if not self._enabled:
      return
    record = {'step': step, **{f'{prefix}/{k}': v for k, v in scalars.items()}}
    self._jsonl.write(json.dumps(record) + '\n')
    self._jsonl.flush()
    for name, value in record.items():
      if name != 'step':
        self._tensorboard.add_scalar(name, value, step)

  def close(self):
    if self._enabled:
      self._jsonl.close()
      self._tensorboard.close()
