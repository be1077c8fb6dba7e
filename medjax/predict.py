"""Apply a trained workdir's best checkpoint to new image files (`--mode=predict`).

Writes a CSV with one row per file: the per-class probabilities and the
decision, at the operating point chosen on the validation split for binary
tasks (the same one `eval/*/metrics.json` reports), else the most probable
class. A file that cannot be read gets its one-line error in the CSV (and on
stderr) and the others are still processed.
"""
import csv
import io
import pathlib
import sys

import numpy as np

from medjax import clinical, evaluation, explain, files, parallel, report
from medjax.data import images as image_files
from medjax.data import pipeline
from medjax.train import loop
from medjax.train import step as steps


def list_inputs(input_path) -> list[pathlib.Path]:
  path = pathlib.Path(input_path)
  if path.is_dir():
    return sorted(p for p in path.rglob('*') if p.is_file()
                  and p.suffix.lower() in image_files.SUFFIXES)
  if not path.exists():
    raise FileNotFoundError(f'--input {path} does not exist')
  return [path]


def _probabilities(experiment, state, images: np.ndarray) -> np.ndarray:
  batch_size = experiment.config.data.eval_batch_size
  parallel.local_batch_size(batch_size, experiment.mesh)
  task = experiment.dataset.task
  probs = []
  for start in range(0, len(images), batch_size):
    chunk = images[start:start + batch_size]
    padded = np.zeros((batch_size,) + chunk.shape[1:], np.float32)
    padded[:len(chunk)] = chunk
    label_shape = (batch_size, task.num_classes) if task.multilabel else (batch_size,)
    batch = {'image': padded, 'mask': np.zeros(batch_size, np.float32),
             'label': np.zeros(label_shape, np.float32 if task.multilabel else np.int32),
             'index': np.zeros(batch_size, np.int32)}
    outputs = experiment.eval_step(state, parallel.to_global(batch, experiment.mesh))
    probs.append(parallel.to_host(outputs['probs'])[:len(chunk)])
  return np.concatenate(probs) if probs else np.zeros((0, task.num_classes))


def predict(experiment, workdir, input_path, output_csv=None, saliency: bool = False,
            which: str = 'best') -> int:
  """Writes the predictions CSV; returns the number of files that failed."""
  config, task = experiment.config, experiment.dataset.task
  output_csv = pathlib.Path(output_csv or pathlib.Path(workdir) / 'predict' / 'predictions.csv')
  state, _, _ = loop.restore_checkpoint(experiment, workdir, which)
  paths = list_inputs(input_path)
  shape = task.inputs['image'].shape
  pixels, errors = {}, {}
  for path in paths:
    try:
      pixels[path] = image_files.to_task_pixels(image_files.read_image(path), shape)
    except (image_files.ImageReadError, OSError) as error:
      errors[path] = str(error).replace('\n', ' ')
      print(f'medjax: error: {path}: {errors[path]}', file=sys.stderr)
  good = [p for p in paths if p in pixels]
  inputs = np.stack([pipeline.normalise_image(pixels[p]) for p in good]) if good else np.zeros(
      (0,) + shape, np.float32)
  probs = _probabilities(experiment, state, inputs)

  threshold, positive = None, None
  if task.kind == 'binary':
    positive = evaluation.positive_index(task, config.eval.positive_class)
    val = evaluation.kept(loop.evaluate(experiment, state, 'val')[1])
    threshold = clinical.operating_threshold(
        (val['label'] == positive).astype(int), val['probs'][:, positive].astype(np.float64),
        config.eval.operating_rule, config.eval.operating_target)

  def decision(p):
    if task.multilabel:
      return ';'.join(n for n, v in zip(task.label_names, p) if v >= 0.5)
    if threshold is not None:
      negative = 1 - positive
      return task.label_names[positive if p[positive] >= threshold else negative]
    return task.label_names[int(np.argmax(p))]

  buffer = io.StringIO()
  writer = csv.writer(buffer)
  writer.writerow(['path', 'status', 'error'] + [f'prob_{n}' for n in task.label_names] +
                  ['decision', 'threshold'])
  prob_by_path = dict(zip(good, probs))
  for path in paths:
    if path in errors:
      writer.writerow([str(path), 'error', errors[path]] + [''] * task.num_classes + ['', ''])
    else:
      p = prob_by_path[path]
      writer.writerow([str(path), 'ok', ''] + [f'{v:.6f}' for v in p] +
                      [decision(p), '' if threshold is None else f'{threshold:.6f}'])
  files.write_text_atomic(output_csv, buffer.getvalue())

  if saliency and good:
    classes = (np.full(len(good), positive) if positive is not None
               else np.argmax(probs, -1))
    variables = steps.model_variables(state)
    options = loop.saliency_options(config)
    maps = {m: np.asarray(explain.saliency(m, state.apply_fn, variables, inputs, classes,
                                           **options))
            for m in loop.saliency_methods(config)}
    captions = [f'{p.name} ({decision(pr)})' for p, pr in zip(good, probs)]
    report.write_saliency_overlays(inputs, maps, captions, output_csv.parent / 'saliency')
  return len(errors)
