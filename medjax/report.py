"""Plots and the Markdown report of one evaluated split.

Writes, next to `metrics.json`: `roc.png` (with its bootstrap band and the
operating point), `pr.png`, `reliability.png`, `confusion.png` and `report.md`.
Every file is written under a temporary name and renamed when complete.
"""
import os
import pathlib
import tempfile

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn import calibration as sk_calibration, metrics as skm  # noqa: E402

from medjax import calibration, files  # noqa: E402
from medjax.evaluation import kept, positive_index  # noqa: E402


def save_figure(figure, path):
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f'.{path.stem}.', suffix='.png',
                                   delete=False) as partial:
    figure.savefig(partial, format='png', dpi=110, bbox_inches='tight')
  os.replace(partial.name, path)
  plt.close(figure)


def _roc_band(labels, scores, num_resamples, seed, confidence):
  grid = np.linspace(0, 1, 101)
  rng = np.random.default_rng(seed)
  strata = [np.flatnonzero(labels == v) for v in (0, 1)]
  curves = []
  for _ in range(num_resamples):
    idx = np.concatenate([rng.choice(s, len(s)) for s in strata])
    fpr, tpr, _ = skm.roc_curve(labels[idx], scores[idx])
    curves.append(np.interp(grid, fpr, tpr))
  tail = (1 - confidence) / 2 * 100
  return grid, np.percentile(curves, tail, axis=0), np.percentile(curves, 100 - tail, axis=0)


def _binary_plots(labels, scores, uncalibrated, result, eval_config, out_dir, title):
  """ROC, PR and reliability plots; the last also shows the `uncalibrated` scores
  (None: no calibration)."""
  metrics = result['metrics']
  figure, axis = plt.subplots(figsize=(4.5, 4.5))
  fpr, tpr, _ = skm.roc_curve(labels, scores)
  grid, low, high = _roc_band(labels, scores, min(eval_config.bootstrap_resamples, 200),
                              eval_config.bootstrap_seed, eval_config.confidence)
  auc = metrics['auc']
  axis.fill_between(grid, low, high, alpha=0.25, label=f'{eval_config.confidence:.0%} band')
  axis.plot(fpr, tpr, label=f'AUC {auc["value"]:.3f} [{auc["ci"][0]:.3f}, {auc["ci"][1]:.3f}]')
  axis.plot([1 - metrics['specificity']['value']], [metrics['sensitivity']['value']], 'o',
            color='crimson', label=f'operating point (threshold '
            f'{result["operating_point"]["threshold"]:.3f})')
  axis.plot([0, 1], [0, 1], ':', color='grey')
  axis.set(xlabel='1 - specificity', ylabel='sensitivity', title=f'ROC: {title}')
  axis.legend(loc='lower right', fontsize=8)
  save_figure(figure, out_dir / 'roc.png')

  figure, axis = plt.subplots(figsize=(4.5, 4.5))
  precision, recall, _ = skm.precision_recall_curve(labels, scores)
  axis.step(recall, precision, where='post', label=f'PR AUC {metrics["pr_auc"]["value"]:.3f}')
  axis.axhline(labels.mean(), ls=':', color='grey', label=f'prevalence {labels.mean():.2f}')
  axis.set(xlabel='recall (sensitivity)', ylabel='precision (PPV)', title=f'PR: {title}',
           ylim=(0, 1.02))
  axis.legend(loc='lower left', fontsize=8)
  save_figure(figure, out_dir / 'pr.png')

  figure, axis = plt.subplots(figsize=(4.5, 4.5))
  if uncalibrated is not None:
    before = result['calibration']['before']
    observed, predicted = sk_calibration.calibration_curve(labels, uncalibrated, n_bins=10,
                                                           strategy='uniform')
    axis.plot(predicted, observed, 's--', color='grey', alpha=0.8,
              label=f'uncalibrated: ECE {before["ece"]:.3f}, Brier {before["brier"]:.3f}')
  observed, predicted = sk_calibration.calibration_curve(labels, scores, n_bins=10,
                                                         strategy='uniform')
  temperature = result.get('calibration', {}).get('temperature', 1.0)
  axis.plot(predicted, observed, 'o-', label=f'T={temperature:.2f}: ECE '
            f'{metrics["ece"]["value"]:.3f}, Brier {metrics["brier"]["value"]:.3f}')
  axis.plot([0, 1], [0, 1], ':', color='grey', label='perfect calibration')
  axis.set(xlabel='predicted probability', ylabel='observed frequency',
           title=f'Reliability: {title}', xlim=(0, 1), ylim=(0, 1))
  axis.legend(loc='upper left', fontsize=8)
  save_figure(figure, out_dir / 'reliability.png')
  counts = result['counts']
  return np.array([[counts['tn'], counts['fp']], [counts['fn'], counts['tp']]])


def _confusion_plot(matrix, names, out_dir, title):
  figure, axis = plt.subplots(figsize=(1.2 * len(names) + 2.5, 1.2 * len(names) + 2))
  axis.imshow(matrix, cmap='Blues')
  for (i, j), value in np.ndenumerate(matrix):
    axis.text(j, i, str(value), ha='center', va='center',
              color='white' if value > matrix.max() / 2 else 'black')
  axis.set_xticks(range(len(names)), names, rotation=30, ha='right')
  axis.set_yticks(range(len(names)), names)
  axis.set(xlabel='predicted', ylabel='true', title=f'Confusion: {title}')
  save_figure(figure, out_dir / 'confusion.png')


def _markdown(result, plots) -> str:
  if 'ensemble' in result:
    steps = ', '.join(str(member['step']) for member in result['ensemble'])
    which = (f'an ensemble of {len(result["ensemble"])} workdirs, the mean of their '
             f'calibrated probabilities; checkpoints: {result["checkpoint"]} (steps {steps})')
  else:
    which = f'Checkpoint: {result["checkpoint"]} (step {result["step"]})'
  lines = [f'# {result["data"]} / {result["model"]}: {result["split"]} split',
           '', f'{which[0].upper()}{which[1:]}; {result["num_examples"]} examples.', '']
  if 'operating_point' in result:
    op = result['operating_point']
    where = f' at threshold {op["threshold"]:.4f}' if 'threshold' in op else ''
    how = ('given (eval.operating_threshold)' if op['chosen_on'] == 'eval.operating_threshold'
           else f'{op["rule"]} chosen on the {op["chosen_on"]} split')
    lines += [f'Operating point: {how}{where}'
              + (f', positive class "{result["positive_class"]}".' if 'positive_class' in result
                 else '.'), '']
  if 'calibration' in result:
    cal = result['calibration']
    source = {'val': 'fitted on the val split', 'eval.temperature': 'eval.temperature',
              'none': 'none fitted'}.get(cal['fitted_on'], cal['fitted_on'])
    lines += [f'Probabilities calibrated by temperature scaling (T = {cal["temperature"]:.3f}, '
              f'{source}): on this split NLL '
              f'{cal["before"]["nll"]:.4f} -> {cal["after"]["nll"]:.4f}, ECE '
              f'{cal["before"]["ece"]:.4f} -> {cal["after"]["ece"]:.4f} (a perfectly '
              f'calibrated model would measure about {cal["after"]["ece_floor"]:.4f} on a '
              f'split of this size), Brier '
              f'{cal["before"]["brier"]:.4f} -> {cal["after"]["brier"]:.4f}.', '']
  confidence = result.get('confidence', 0.95)
  lines += [f'| metric | value | {confidence:.0%} CI |', '|---|---|---|']
  for name, entry in result['metrics'].items():
    lines.append(f'| {name} | {entry["value"]:.4f} | {entry["ci"][0]:.4f} to {entry["ci"][1]:.4f} |')
  lines.append('')
  lines += [f'![{p}]({p})' for p in plots]
  return '\n'.join(lines) + '\n'


def write_report(result: dict, outputs: dict, task, eval_config, out_dir):
  """Plots for `result` (from `evaluation.clinical_report`) and report.md."""
  out_dir = pathlib.Path(out_dir)
  outputs = kept(outputs)
  title = f'{result["data"]} {result["split"]}'
  plots = []
  if eval_config.plots:
    if task.kind == 'binary':
      positive = positive_index(task, eval_config.positive_class)
      labels = (outputs['label'] == positive).astype(int)
      temperature = result.get('calibration', {}).get('temperature', 1.0)
      uncalibrated = (calibration.probabilities(outputs['logits'], task)[:, positive]
                      if temperature != 1.0 else None)
      matrix = _binary_plots(labels, outputs['probs'][:, positive].astype(np.float64),
                             uncalibrated, result, eval_config, out_dir, title)
      names = [f'not {task.label_names[positive]}', task.label_names[positive]]
      plots += ['roc.png', 'pr.png', 'reliability.png']
      _confusion_plot(matrix, names, out_dir, title)
      plots.append('confusion.png')
    elif not task.multilabel:
      _confusion_plot(np.asarray(result['confusion_matrix']), list(task.label_names), out_dir,
                      title)
      plots.append('confusion.png')
  files.write_text_atomic(out_dir / 'report.md', _markdown(result, plots))


def _displayable(image):
  """A model input (normalised to [-1, 1]) as an image in [0, 1] for imshow."""
  image = np.clip((np.asarray(image) + 1.0) / 2.0, 0.0, 1.0)
  return image[..., 0] if image.shape[-1] == 1 else image


def write_saliency_overlays(inputs, maps: dict, captions, out_dir, modality: str = 'image'):
  """One PNG per example: images (the central slice of volumes) with each method's map
  over them; signals as their leads with each method's saliency over time shaded beneath."""
  if modality == 'signal':
    return _write_signal_saliency(inputs, maps, captions, pathlib.Path(out_dir))
  images = np.asarray(inputs)
  volumes = images.ndim == 5  # (N, D, H, W, C): the central slice of each volume is shown
  out_dir = pathlib.Path(out_dir)
  written = []
  for i, caption in enumerate(captions):
    figure, axes = plt.subplots(1, 1 + len(maps), figsize=(2.4 * (1 + len(maps)), 2.8))
    middle = images.shape[1] // 2
    base = _displayable(images[i, middle] if volumes else images[i])
    axes[0].imshow(base, cmap='gray', vmin=0, vmax=1)
    axes[0].set_title(f'input (slice {middle})' if volumes else 'input', fontsize=9)
    for axis, (method, method_maps) in zip(axes[1:], maps.items()):
      overlay = np.asarray(method_maps[i])
      axis.imshow(base, cmap='gray', vmin=0, vmax=1)
      axis.imshow(overlay[middle] if volumes else overlay, cmap='jet', alpha=0.45, vmin=0,
                  vmax=1)
      axis.set_title(method.replace('_', ' '), fontsize=9)
    for axis in axes:
      axis.axis('off')
    figure.suptitle(caption, fontsize=9)
    name = f'{i:02d}_{caption.split()[0]}.png'
    save_figure(figure, out_dir / name)
    written.append(name)
  return written


def _write_signal_saliency(signals, maps: dict, captions, out_dir: pathlib.Path):
  written = []
  for i, caption in enumerate(captions):
    figure, axes = plt.subplots(len(maps), 1, figsize=(7, 1.6 * len(maps) + 0.6), squeeze=False,
                                sharex=True)
    signal = np.asarray(signals[i])
    time = np.arange(signal.shape[0])
    for axis, (method, method_maps) in zip(axes[:, 0], maps.items()):
      axis.plot(time, signal, lw=0.8)
      low, high = axis.get_ylim()
      axis.imshow(np.asarray(method_maps[i])[None], cmap='Reds', alpha=0.5, aspect='auto',
                  extent=(time[0], time[-1], low, high), vmin=0, vmax=1)
      axis.set_ylabel(method.replace('_', ' '), fontsize=8)
    axes[-1, 0].set_xlabel('sample')
    figure.suptitle(caption, fontsize=9)
    name = f'{i:02d}_{caption.split()[0]}.png'
    save_figure(figure, out_dir / name)
    written.append(name)
  return written
