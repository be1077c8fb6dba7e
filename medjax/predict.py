"""Apply a trained workdir to new inputs (`--mode=predict`), without the data set.

The workdir holds what prediction needs: `config.json`, `task.json` (inputs,
preprocessing statistics, label names), the checkpoints, `calibration.json` (the
temperature fitted on the validation split) and `operating_point.json` (the threshold
chosen there, for binary tasks). The data family
reads the new files into the stored example format (images: PNG/JPEG/DICOM; UCR:
CSV/TSV series; MIT-BIH: WFDB records, one row per beat). Writes a CSV with one row
per input: the per-class probabilities and the decision. An input that cannot be
read gets its one-line error in the CSV (and on stderr) and the others are still
processed; when none can be read, nothing is written.
"""
import csv
import io
import json
import pathlib
import sys

import numpy as np

from medjax import calibration, data, evaluate, files, parallel, report, tta
from medjax.data import pipeline
from medjax.data.task import Task


def stored_dataset(workdir) -> data.Dataset:
  """The workdir's task with no sources: all prediction needs of the data."""
  path = pathlib.Path(workdir) / 'task.json'
  if not path.exists():
    raise FileNotFoundError(f'{path} not found: --mode=predict needs a workdir trained by '
                            'this version of medjax')
  return data.Dataset(task=Task.from_json(path.read_text()), sources={})


def _temperature(workdir) -> float:
  """The workdir's fitted temperature; 1 for a workdir evaluated before calibration
  existed (its operating point was chosen on uncalibrated probabilities too)."""
  path = pathlib.Path(workdir) / calibration.CALIBRATION_FILE
  return float(json.loads(path.read_text())['temperature']) if path.exists() else 1.0


def _probabilities(experiment, state, inputs: dict, temperature: float) -> np.ndarray:
  batch_size = experiment.config.data.eval_batch_size
  parallel.local_batch_size(batch_size, experiment.mesh)
  task = experiment.dataset.task
  views = tta.views(experiment.config.eval.tta, task)
  count = len(next(iter(inputs.values())))
  logits = []
  for start in range(0, count, batch_size):
    chunk = {key: values[start:start + batch_size] for key, values in inputs.items()}
    size = len(next(iter(chunk.values())))
    batch = {key: np.concatenate([values, np.zeros((batch_size - size,) + values.shape[1:],
                                                   values.dtype)])
             for key, values in chunk.items()}
    label_shape = (batch_size, task.num_classes) if task.multilabel else (batch_size,)
    batch.update(mask=np.zeros(batch_size, np.float32), index=np.zeros(batch_size, np.int32),
                 label=np.zeros(label_shape, np.float32 if task.multilabel else np.int32))
    # The test-time views the stored temperature and operating point were fitted with.
    per_view = [parallel.to_host(experiment.eval_step(
        state, parallel.to_global(view(batch), experiment.mesh))['logits'])[:size]
                for view in views]
    logits.append(np.mean(per_view, axis=0))
  return calibration.probabilities(np.concatenate(logits), task, temperature)


def _binary_threshold(workdir, task, config) -> tuple[int | None, float | None]:
  """(positive class, threshold) of a binary task, from `operating_point.json`."""
  if task.kind != 'binary':
    return None, None
  path = pathlib.Path(workdir) / evaluate.OPERATING_POINT_FILE
  if not path.exists():
    raise FileNotFoundError(f'{path} not found: evaluate the workdir first '
                            f'(python -m medjax.experiment --mode=eval --workdir={workdir})')
  positive = evaluate.evaluation.positive_index(task, config.eval.positive_class)
  return positive, float(json.loads(path.read_text())['threshold'])


def predict(experiment, workdir, input_path, output_csv=None, saliency: int = 0,
            which: str = 'best') -> tuple[int, int]:
  """Writes the predictions CSV, and saliency overlays of the first `saliency` readable
  inputs; returns (inputs predicted, inputs that failed)."""
  config, task = experiment.config, experiment.dataset.task
  output_csv = pathlib.Path(output_csv or pathlib.Path(workdir) / 'predict' / 'predictions.csv')
  if not pathlib.Path(input_path).exists():
    raise FileNotFoundError(f'--input {input_path} does not exist')
  family, _ = data.family_of(config.data.name)
  rows = family.read_inputs(input_path, task, config.data)
  errors = {name: value for name, value in rows if isinstance(value, str)}
  for name, error in errors.items():
    print(f'medjax: error: {name}: {error}', file=sys.stderr)
  good = [(name, value) for name, value in rows if not isinstance(value, str)]
  if not rows:
    raise ValueError(f'--input {input_path}: holds no input in the format of '
                     f'{config.data.name} (an empty file or folder?)')
  if not good:
    raise ValueError(f'--input {input_path}: no readable input '
                     f'({len(errors)} could not be read; see above)')
  positive, threshold = _binary_threshold(workdir, task, config)
  state, _, _ = evaluate.restore_checkpoint(experiment, workdir, which)
  inputs = pipeline.model_inputs({key: np.stack([value[key] for _, value in good])
                                  for key in task.inputs}, task)
  probs = dict(zip((name for name, _ in good),
                   _probabilities(experiment, state, inputs, _temperature(workdir))))

  def decision(p):
    if task.multilabel:
      return ';'.join(n for n, v in zip(task.label_names, p) if v >= 0.5)
    if threshold is not None:
      return task.label_names[positive if p[positive] >= threshold else 1 - positive]
    return task.label_names[int(np.argmax(p))]

  buffer = io.StringIO()
  writer = csv.writer(buffer)
  writer.writerow(['input', 'status', 'error'] + [f'prob_{n}' for n in task.label_names] +
                  ['decision', 'threshold'])
  for name, _ in rows:
    if name in errors:
      writer.writerow([name, 'error', errors[name]] + [''] * task.num_classes + ['', ''])
    else:
      p = probs[name]
      writer.writerow([name, 'ok', ''] + [f'{v:.6f}' for v in p] +
                      [decision(p), '' if threshold is None else f'{threshold:.6f}'])
  files.write_text_atomic(output_csv, buffer.getvalue())

  if saliency:
    if len(good) > saliency:
      print(f'medjax: saliency overlays of the first {saliency} of {len(good)} inputs '
            '(--saliency_limit)', file=sys.stderr)
    explained = good[:saliency]
    inputs = {key: value[:saliency] for key, value in inputs.items()}
    all_probs = np.stack([probs[name] for name, _ in explained])
    classes = (np.full(len(explained), positive) if positive is not None
               else np.argmax(all_probs, -1))
    key, maps = evaluate.saliency_maps(experiment, state, inputs, classes)
    captions = [f'{pathlib.Path(name).name} ({decision(p)})' for (name, _), p in
                zip(explained, all_probs)]
    report.write_saliency_overlays(inputs[key], maps, captions, output_csv.parent / 'saliency',
                                   task.inputs[key].modality)
  return len(good), len(errors)
