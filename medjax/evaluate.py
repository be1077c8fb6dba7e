"""Evaluation of a trained workdir: a split through the eval step, the clinical report.

`evaluate(experiment, state, split)` gives the validation metrics the train loop
selects checkpoints by; `evaluate_checkpoint(experiment, workdir, split)` restores a
checkpoint and writes `eval/<split>/`. The command line calls the latter after
training and again for `--mode=eval`, so both write identical numbers.
`evaluate_ensemble` does the same for several workdirs as one model
(`--mode=eval --ensemble=W1,W2,...`).

`metrics.json` holds the headline figures (`accuracy`, `auc`, `loss`), then `metrics`
with 95% bootstrap intervals: binary tasks at the operating point chosen on validation
(`eval.operating_rule`: Youden, or a target sensitivity or specificity): sensitivity,
specificity, PPV, NPV, F1, MCC, Brier score and ECE; multi-class tasks: AUC, accuracy,
balanced accuracy (macro recall), macro F1, MCC and `per_class`. Where examples belong to
patients (MIT-BIH records), the intervals resample patients, not examples. MIT-BIH runs
add an `aami` section: Se, +P and FPR per class, Cohen's κ and the jκ index
(Mondéjar-Guerra et al. 2019). Reported probabilities are calibrated by temperature
scaling fitted on validation (`eval.calibrate`; it changes no decision and no ranking),
or given (`eval.temperature`: a refit's, which has no validation split);
`calibration` gives the split's NLL, ECE and Brier score before and after, and the ECE a
perfectly calibrated model would measure on a split of its size (the ECE's sampling floor).
`--mode=eval --workdir=OUT --ensemble=W1,W2,W3` evaluates trained workdirs as one model
(the mean of their calibrated probabilities) with the same report, intervals and
validation-chosen operating point, written to `OUT`. `eval.tta` (e.g. `hflip,shift`)
averages the logits of fixed test-time views of each input (images: flips, 2-pixel
shifts; signals: 2% time shifts) in every evaluation, validation included, and in
prediction;
`--tta=hflip,shift` evaluates an already trained model with views
(`--mode=eval --ensemble=RUN --workdir=NEW --tta=...` keeps RUN's own results).
"""
import pathlib
from typing import Any, NamedTuple

import jax
import numpy as np

from medjax import (calibration, checkpoint, evaluation, explain, files, metrics, models,
                    parallel, report, tta)
from medjax.data import pipeline, sources
from medjax.data.modalities import MODALITIES
from medjax.models.encoders import ENCODERS
from medjax.train import step as steps
from medjax.train.setup import Experiment, count_params, device_batch

OPERATING_POINT_FILE = 'operating_point.json'


def evaluate(experiment: Experiment, state, split: str) -> tuple[dict, dict]:
  """Runs the eval step over every example of `split` once; returns (metrics, outputs)."""
  if split not in experiment.dataset.sources:
    raise ValueError(f'there is no {split} split to evaluate: with data.refit the validation '
                     'examples are training examples')
  views = tta.views(experiment.config.eval.tta, experiment.dataset.task)
  outputs = split_outputs(experiment, state, split, experiment.eval_step, views)
  return metrics.classification_metrics(outputs, experiment.dataset.task), outputs


def split_outputs(experiment: Experiment, state, split: str, step, views) -> dict:
  """`step(state, batch)` over every example of `split` once, each batch's outputs the
  mean over `views` (test-time views; one: the plain input), with each example's
  label, mask, index (and group, where the task has one)."""
  local_size = parallel.local_batch_size(experiment.config.data.eval_batch_size,
                                         experiment.mesh)
  task = experiment.dataset.task
  gathered = []
  for batch in pipeline.eval_batches(experiment.dataset.sources[split], task,
                                     batch_size=local_size, process_index=jax.process_index(),
                                     process_count=jax.process_count()):
    per_view = []
    for view in views:
      global_batch = parallel.to_global(device_batch(view(batch)), experiment.mesh)
      per_view.append(parallel.to_host({**step(state, global_batch),
                                        **{k: global_batch[k] for k in
                                           ('label', 'mask', 'index')}}))
    gathered.append(per_view[0] if len(views) == 1 else _mean_of_views(per_view, task))
  outputs = {key: np.concatenate([g[key] for g in gathered]) for key in gathered[0]}
  if task.group_key:
    groups = sources.read_all(experiment.dataset.sources[split], keys=(task.group_key,))
    outputs['group'] = groups[task.group_key][outputs['index']]
  return outputs


def _mean_of_views(per_view: list[dict], task) -> dict:
  """One batch's outputs over its test-time views: the mean logits, their probabilities
  and loss."""
  logits = np.mean([outputs['logits'] for outputs in per_view], axis=0)
  labels = per_view[0]['label']
  return {**per_view[0], 'logits': logits,
          'probs': calibration.probabilities(logits, task).astype(np.float32),
          'loss': np.asarray(steps.per_example_loss(logits, labels, task))}


def _write_predictions(path, outputs, task):
  keep = outputs['mask'] > 0
  header = ['index', 'label'] + [f'prob_{i}' for i in range(task.num_classes)]
  rows = [','.join(header)]
  labels = outputs['label'][keep].reshape(int(keep.sum()), -1)
  for index, label, probs in zip(outputs['index'][keep], labels, outputs['probs'][keep]):
    rows.append(','.join([str(int(index)), ' '.join(str(int(v)) for v in label)] +
                         [f'{p:.8g}' for p in probs]))
  files.write_text_atomic(path, '\n'.join(rows) + '\n')


def _with_temperature(outputs: dict, task, temperature: float) -> dict:
  """`outputs` with 'probs' recomputed from the logits divided by `temperature`."""
  probs = calibration.probabilities(outputs['logits'], task, temperature)
  return {**outputs, 'probs': probs.astype(np.float32)}


def restore_checkpoint(experiment: Experiment, workdir, which: str = 'best'):
  """(state, step, meta) of `which` checkpoint of `workdir`: 'best' (by the validation
  metric `train.select_metric`), 'latest', or a step number kept in `checkpoints/` or
  `best/`."""
  workdir = pathlib.Path(workdir)
  if which not in ('best', 'latest') and not which.isdigit():
    raise ValueError(f"--checkpoint={which!r}: expected 'best', 'latest' or a step number")
  folders = {'best': ['best'], 'latest': ['checkpoints']}.get(which, ['checkpoints', 'best'])
  for folder in folders:
    if not (workdir / folder).is_dir():
      continue
    manager = checkpoint.Checkpoints(workdir / folder, read_only=True)
    steps_kept = manager.all_steps()
    step = (max(steps_kept, default=None) if not which.isdigit()
            else int(which) if int(which) in steps_kept else None)
    if step is not None:
      abstract = checkpoint.abstract_like(experiment.state, experiment.state_sharding)
      state, meta = manager.restore(step, abstract)
      manager.close()
      return state, step, meta
    manager.close()
  raise FileNotFoundError(f'{workdir} holds no {which} checkpoint (looked in '
                          f'{", ".join(folders)}): train first')


class _Evaluated(NamedTuple):
  """One checkpoint on a split and on validation, probabilities calibrated."""
  state: Any
  step: int
  meta: dict
  values: dict        # the uncalibrated validation-style metrics of the split
  outputs: dict
  val_outputs: dict
  temperature: float
  calibration: dict   # the split's NLL, ECE and Brier before and after


def _evaluate_calibrated(experiment: Experiment, workdir, split: str, which: str) -> _Evaluated:
  task = experiment.dataset.task
  state, step, meta = restore_checkpoint(experiment, workdir, which)
  values, outputs = evaluate(experiment, state, split)
  if split == 'val':
    val_outputs = outputs
  elif 'val' in experiment.dataset.sources:
    val_outputs = evaluate(experiment, state, 'val')[1]
  else:  # a refit's
    val_outputs = None
  temperature, fitted_on = _temperature(experiment.config.eval, val_outputs, task)
  split_kept = evaluation.kept(outputs)
  calibrated = calibration.report(split_kept['logits'], split_kept['label'], task, temperature,
                                  fitted_on)
  outputs = _with_temperature(outputs, task, temperature)
  if val_outputs is not None:
    val_outputs = _with_temperature(val_outputs, task, temperature)
  return _Evaluated(state, step, meta, values, outputs, val_outputs, temperature, calibrated)


def _temperature(eval_config, val_outputs, task) -> tuple[float, str]:
  """(temperature, what it came from): `eval.temperature` where given, else fitted on
  the validation outputs (1 where there are none, a refit's, or `eval.calibrate` is off)."""
  if eval_config.temperature:
    return eval_config.temperature, 'eval.temperature'
  if not eval_config.calibrate or val_outputs is None:
    return 1.0, 'none'
  val_kept = evaluation.kept(val_outputs)
  return calibration.fit_temperature(val_kept['logits'], val_kept['label'], task), 'val'


def _eval_dir(workdir, split: str, which: str) -> pathlib.Path:
  return pathlib.Path(workdir) / 'eval' / (split if which == 'best' else f'{split}-{which}')


def _write_results(result: dict, outputs: dict, task, config, workdir, out_dir, which: str):
  _write_predictions(out_dir / 'predictions.csv', outputs, task)
  report.write_report(result, outputs, task, config.eval, out_dir)
  if which == 'best' and 'operating_point' in result:
    files.write_json_atomic(pathlib.Path(workdir) / OPERATING_POINT_FILE,
                            result['operating_point'])


def evaluate_checkpoint(experiment: Experiment, workdir, split: str = 'test',
                        which: str = 'best') -> dict:
  """Evaluates `which` checkpoint of `workdir` on `split` (the temperature and the
  operating points chosen on the validation split) and writes `eval/<split>/` (for the
  best checkpoint, else `eval/<split>-<which>/`): metrics.json, predictions.csv, the
  plots, report.md and saliency overlays. The reported probabilities are calibrated
  (`eval.calibrate`); `calibration` holds the split's NLL, ECE and Brier score before
  and after. The best checkpoint's temperature and operating point are also stored
  (`calibration.json`, `operating_point.json`) for prediction. Returns the metrics."""
  config, task = experiment.config, experiment.dataset.task
  run = _evaluate_calibrated(experiment, workdir, split, which)
  result = {'split': split, 'checkpoint': which, 'step': run.step,
            'select_metric': run.meta.get('select_metric', experiment.select_metric),
            'best_validation': run.meta['best_metric'], 'data': config.data.name,
            'model': config.model.name, 'num_params': count_params(run.state),
            'confidence': config.eval.confidence, **run.values, 'calibration': run.calibration,
            **evaluation.clinical_report(run.outputs, run.val_outputs, task, config.eval)}
  if jax.process_index() == 0:
    out_dir = _eval_dir(workdir, split, which)
    _write_results(result, run.outputs, task, config, workdir, out_dir, which)
    if config.explain.num_images:
      write_saliency(experiment, run.state, run.outputs, result, out_dir / 'saliency')
    if which == 'best':
      files.write_json_atomic(pathlib.Path(workdir) / calibration.CALIBRATION_FILE,
                              {'temperature': run.temperature,
                               'fitted_on': run.calibration['fitted_on'], 'step': run.step})
    files.write_json_atomic(out_dir / 'metrics.json', result)
  return result


def _mean_of_members(member_outputs: list[dict], task) -> dict:
  """The members' outputs with 'probs' their mean and 'loss' its per-example NLL.
  Members must have evaluated the same examples in the same order: a split drawn
  differently (another validation fraction or seed, other held-out records) shows as
  other labels or patients at the same positions."""
  first = member_outputs[0]
  for other in member_outputs[1:]:
    for key in ('index', 'label', 'group'):
      if key in first and not np.array_equal(other.get(key), first[key]):
        raise ValueError(f"ensemble members' splits hold different examples (their {key} "
                         'values differ): train every member on the same data split')
  probs = np.mean([o['probs'].astype(np.float64) for o in member_outputs], axis=0)
  clipped = np.clip(probs, 1e-12, 1 - 1e-12)
  labels = first['label']
  if task.multilabel:
    loss = -np.mean(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped), -1)
  else:
    loss = -np.log(clipped[np.arange(len(labels)), labels.astype(int)])
  kept_keys = {k: v for k, v in first.items() if k not in ('logits', 'probs', 'loss')}
  return {**kept_keys, 'probs': probs.astype(np.float32), 'loss': loss}


def evaluate_ensemble(members: list[tuple[Experiment, pathlib.Path]], workdir,
                      split: str = 'test', which: str = 'best') -> dict:
  """Evaluates several trained workdirs as one model: the mean of their calibrated
  probabilities (each member's temperature fitted on its own validation outputs),
  reported as a single model is (intervals, the operating point chosen on the
  validation split of the mean). Writes `workdir/eval/<split>/` (no saliency: there is
  no one model to explain), `ensemble.json` and, for the best checkpoints,
  `operating_point.json`. `best_validation` is the ensemble's own validation figure of
  the members' selection metric, so that a sweep compares it with single models on
  validation. Returns the metrics."""
  experiment = members[0][0]
  config, task = experiment.config, experiment.dataset.task
  runs = [_evaluate_calibrated(e, member_dir, split, which) for e, member_dir in members]
  outputs = _mean_of_members([run.outputs for run in runs], task)
  validated = all(run.val_outputs is not None for run in runs)  # refits are not
  val_outputs = _mean_of_members([run.val_outputs for run in runs], task) if validated else None
  select = experiment.select_metric
  described = [{'workdir': str(member_dir), 'model': e.config.model.name, 'step': run.step,
                'temperature': run.temperature, 'calibration': run.calibration}
               for (e, member_dir), run in zip(members, runs)]
  result = {'split': split, 'checkpoint': which, 'ensemble': described,
            'select_metric': select,
            'best_validation': (metrics.classification_metrics(val_outputs, task)[select]
                                if validated else None),
            'data': config.data.name,
            'model': '+'.join(e.config.model.name for e, _ in members),
            'num_params': sum(count_params(run.state) for run in runs),
            'confidence': config.eval.confidence,
            **metrics.classification_metrics(outputs, task),
            **evaluation.clinical_report(outputs, val_outputs, task,
                                         _ensemble_eval_config(members, validated))}
  if jax.process_index() == 0:
    out_dir = _eval_dir(workdir, split, which)
    files.write_json_atomic(pathlib.Path(workdir) / 'ensemble.json',
                            {'members': [d['workdir'] for d in described], 'checkpoint': which})
    _write_results(result, outputs, task, config, workdir, out_dir, which)
    files.write_json_atomic(out_dir / 'metrics.json', result)
  return result


def _ensemble_eval_config(members, validated: bool):
  """The first member's `eval` settings; where the members have no validation split
  (refits), the mean of their given thresholds decides, as their mean probability does
  (`--operating_threshold` gives every member the one threshold to decide at)."""
  eval_config = members[0][0].config.eval
  if validated:
    return eval_config
  eval_config = eval_config.copy_and_resolve_references()
  eval_config.operating_threshold = float(np.mean(
      [e.config.eval.operating_threshold for e, _ in members]))
  return eval_config


def saliency_options(config) -> dict:
  """Keyword arguments of every saliency method, from `config.explain`."""
  explain_config = config.explain
  return {'rng': jax.random.fold_in(jax.random.key(config.seed), 2),
          'num_samples': explain_config.smoothgrad_samples,
          'noise': explain_config.smoothgrad_noise, 'steps': explain_config.ig_steps,
          'layer': explain_config.layer or getattr(ENCODERS[config.model.name],
                                                   'GRAD_CAM_LAYER', '')}


def saliency_methods(config) -> list[str]:
  """The configured methods this model supports (Grad-CAM needs a tapped CNN/ResNet)."""
  methods = explain.configured_methods(config.explain.methods)
  if not hasattr(ENCODERS[config.model.name], 'GRAD_CAM_LAYER') and not config.explain.layer:
    methods = [m for m in methods if m != 'grad_cam']
  return methods


def explained_key(experiment: Experiment) -> str:
  """The input the saliency maps are over: the one `model.name`'s encoder reads (of
  several, as the linear model reads every input, the first with positions: pixels,
  voxels or time steps)."""
  task = experiment.dataset.task
  names = models.encoder_names(experiment.config.model, task)
  read = [key for key, name in names.items() if name == experiment.config.model.name]
  positional = [key for key in read
                if getattr(MODALITIES[task.inputs[key].modality], 'POSITIONAL', False)]
  return (positional or read)[0]


def saliency_maps(experiment: Experiment, state, batch: dict, classes) -> tuple[str, dict]:
  """(explained input key, {method: maps}) for prepared model inputs `batch`."""
  config, task = experiment.config, experiment.dataset.task
  key = explained_key(experiment)
  options = {**saliency_options(config),
             'baseline': MODALITIES[task.inputs[key].modality].BLACK}
  variables = steps.model_variables(state)
  return key, {method: np.asarray(explain.saliency(method, state.apply_fn, variables, batch, key,
                                                   classes, **options))
               for method in saliency_methods(config)}


def write_saliency(experiment: Experiment, state, outputs, result, out_dir):
  """Saliency overlays of `config.explain.num_images` examples, the informative cases first."""
  config, task = experiment.config, experiment.dataset.task
  chosen = evaluation.saliency_selection(outputs, task, result, config.eval,
                                         config.explain.num_images)
  if not chosen:
    return
  source = experiment.dataset.sources[result['split']]
  batch = pipeline.model_inputs(
      sources.read_batch(source, [position for position, _, _ in chosen]), task)
  classes = np.asarray([target for _, _, target in chosen])
  key, maps = saliency_maps(experiment, state, batch, classes)
  captions = [f'{category} #{position} (explaining "{task.label_names[target]}")'
              for position, category, target in chosen]
  report.write_saliency_overlays(batch[key], maps, captions, out_dir,
                                 task.inputs[key].modality)
