"""The results of a sweep: statistics over seeds and comparisons with the baseline.

Per variant and test metric: mean, standard deviation and a Student-t 95% interval
of the mean over the finished seeds. Each variant is compared with the baseline
of its data set in two paired ways: a paired t-test of the per-seed test AUCs
(seed k against seed k), and, for binary tasks, DeLong's test on the same test
cases with each arm's probabilities averaged over those seeds.
"""
import csv
import io
import json
import pathlib

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

from medjax import clinical, files, report  # noqa: E402
from medjax.sweep import TEST_METRICS_FILE, validation_of  # noqa: E402
from medjax.train import objectives  # noqa: E402

# Column names of results.md; a sweep names its columns (`Sweep.table_metrics`) and the
# metric its variants are compared on (`Sweep.metric`).
COLUMN_NAMES = {'auc': 'AUC', 'accuracy': 'ACC', 'ece': 'ECE', 'ece_floor': 'ECE floor',
                'balanced_accuracy': 'macro recall',
                'f1_macro': 'macro F1', 'jkappa': 'jκ'}
CONFIDENCE = 0.95
# What this report reads of a run: all that a published run keeps, and enough for
# `--report-only` to tabulate it and for the runner to count it as finished. Not the
# run's config.json: it names this machine's data folder (the sweep file and the
# commit say what was run).
SUMMARY_FILE = 'train_summary.json'
TEST_PREDICTIONS_FILE = 'eval/test/predictions.csv'
RUN_FILES = (SUMMARY_FILE, TEST_METRICS_FILE, TEST_PREDICTIONS_FILE)


def run_values(run) -> dict | None:
  """The test metrics, training time and size of a finished run (None if unfinished)."""
  if not run.finished:
    return None
  result = json.loads((run.workdir / TEST_METRICS_FILE).read_text())
  values = {name: result[name] for name in ('auc', 'accuracy', 'loss')}
  sections = [result.get('metrics', {})] + [
      section['metrics'] for section in result.values()
      if isinstance(section, dict) and isinstance(section.get('metrics'), dict)]
  intervals = {}
  for section in sections:  # the standard metrics, then the task's scores (e.g. 'aami')
    for name, entry in section.items():
      values.setdefault(name, entry['value'])
      intervals.setdefault(name, entry['ci'])
  if 'positive_class' in result:  # binary: the ECE's sampling floor, from the predictions
    # (of label 1's probabilities; those of label 0 mirror them in the equal-width bins)
    values['ece_floor'] = clinical.ece_sampling_floor(read_predictions(run)['probs'][:, 1])
  summary_file = run.workdir / SUMMARY_FILE
  summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
  return {'values': values, 'data': result['data'], 'num_params': result['num_params'],
          'train_seconds': summary.get('train_seconds', float('nan')),
          # The validation figure the run's checkpoint was chosen by (an ensemble's: of
          # its mean prediction; None in results written before runs recorded it).
          'validation': result.get('best_validation', summary.get('best_validation')),
          'select_metric': result.get('select_metric', summary.get('select_metric', '')),
          'intervals': intervals}


def summarise(values, confidence: float = CONFIDENCE) -> dict:
  """Mean, sample standard deviation and the t interval of the mean."""
  values = np.asarray([v for v in values if v is not None], np.float64)
  n = len(values)
  if n == 0:
    return {'n': 0, 'mean': float('nan'), 'std': float('nan'), 'ci': (float('nan'),) * 2}
  mean = float(values.mean())
  if n == 1:
    return {'n': 1, 'mean': mean, 'std': float('nan'), 'ci': (float('nan'),) * 2}
  std = float(values.std(ddof=1))
  half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * std / np.sqrt(n))
  return {'n': n, 'mean': mean, 'std': std, 'ci': (mean - half, mean + half)}


def read_predictions(run) -> dict:
  """{'index', 'label' (strings), 'probs'} of a run's test predictions, sorted by index."""
  with open(run.workdir / TEST_PREDICTIONS_FILE, newline='') as f:
    rows = sorted(csv.DictReader(f), key=lambda row: int(row['index']))
  prob_columns = [key for key in rows[0] if key.startswith('prob_')]
  return {'index': np.asarray([int(row['index']) for row in rows]),
          'label': [row['label'] for row in rows],
          'probs': np.asarray([[float(row[c]) for c in prob_columns] for row in rows])}


def _is_binary(predictions) -> bool:
  return predictions['probs'].shape[1] == 2 and all(' ' not in l for l in predictions['label'])


def compare(variant_runs: dict, baseline_runs: dict, confidence: float = CONFIDENCE,
            metric: str = 'auc') -> dict:
  """A variant against the baseline over the seeds both finished.

  `*_runs` map seed -> Run. Returns the difference of `metric` (variant - baseline),
  the paired t-test p-value over seeds and, for the AUC of binary tasks, DeLong's test
  on the seed-averaged test probabilities.
  """
  seeds = sorted(s for s in variant_runs if s in baseline_runs
                 and variant_runs[s].finished and baseline_runs[s].finished)
  out = {'paired_seeds': len(seeds), 'difference': float('nan'),
         'ttest_p': float('nan'), 'delong_p': float('nan'), 'delong_ci': (float('nan'),) * 2}
  if not seeds:
    return out
  value_a = np.asarray([run_values(variant_runs[s])['values'][metric] for s in seeds])
  value_b = np.asarray([run_values(baseline_runs[s])['values'][metric] for s in seeds])
  out['difference'] = float(np.mean(value_a - value_b))
  if len(seeds) >= 2 and np.std(value_a - value_b) > 0:
    out['ttest_p'] = float(stats.ttest_rel(value_a, value_b).pvalue)
  if metric != 'auc':
    return out
  preds_a = [read_predictions(variant_runs[s]) for s in seeds]
  preds_b = [read_predictions(baseline_runs[s]) for s in seeds]
  reference = preds_a[0]
  same_cases = all(np.array_equal(p['index'], reference['index']) and
                   p['label'] == reference['label'] for p in preds_a + preds_b)
  if same_cases and _is_binary(reference):
    labels = np.asarray([int(l) for l in reference['label']])
    mean_a = np.mean([p['probs'][:, 1] for p in preds_a], axis=0)
    mean_b = np.mean([p['probs'][:, 1] for p in preds_b], axis=0)
    test = clinical.delong_test(labels, mean_a, mean_b, confidence)
    out.update(delong_p=test['p_value'], delong_ci=tuple(test['ci']),
               delong_auc_difference=test['difference'])
  return out


def _by_variant(runs) -> dict:
  grouped = {}
  for run in runs:
    grouped.setdefault(run.variant.name, {})[run.seed] = run
  return grouped


def collect(sweep, runs) -> list[dict]:
  """One row per variant: summaries of each metric, size, time and comparison."""
  grouped = _by_variant(runs)
  finished = {name: {seed: run_values(run) for seed, run in by_seed.items()}
              for name, by_seed in grouped.items()}
  data_of = {name: next((v['data'] for v in values.values() if v), '')
             for name, values in finished.items()}
  variant_of = {variant.name: variant for variant in sweep.variants}
  validated_by = {name: validation_of(variant_of[name], variant_of) for name in grouped}
  baseline_of_data = {(data_of[name], validated_by[name]): name for name in sweep.baselines}
  rows = []
  for name, by_seed in grouped.items():
    done = [v for v in finished[name].values() if v]
    members = [len(run.members) for run in by_seed.values()]
    row = {'variant': name, 'data': data_of[name], 'finished': len(done), 'seeds': len(by_seed),
           'ensemble_size': max(members) if min(members) == max(members) else
                            f'{min(members)}-{max(members)}',
           'num_params': done[0]['num_params'] if done else None,
           'train_seconds': summarise([v['train_seconds'] for v in done]),
           'validation': summarise([v['validation'] for v in done]),
           'select_metric': next((v['select_metric'] for v in done if v['select_metric']), ''),
           'validated_by': validated_by[name], 'refit_of': variant_of[name].refit_of}
    metric_names = list(sweep.table_metrics) + sorted(
        {m for v in done for m in v['values']} - set(sweep.table_metrics))
    row['metrics'] = {m: summarise([v['values'].get(m) for v in done]) for m in metric_names
                      if any(m in v['values'] for v in done)}
    baseline = (variant_of[name].baseline or
                baseline_of_data.get((data_of[name], validated_by[name])))
    # An ensemble's runs are not seeds: there is nothing to pair them with.
    comparison = (compare(by_seed, grouped[baseline], metric=sweep.metric)
                  if baseline and baseline != name and done
                  and not variant_of[name].ensemble_of else None)
    if comparison and comparison['paired_seeds']:
      row['baseline'], row['comparison'] = baseline, comparison
    row['reference'] = sweep.reference.get(name, {})
    rows.append(row)
  return rows


def chosen(rows) -> list[tuple[str, dict | None, str, dict | None]]:
  """The study's rule, applied: per data set and validation protocol (the data set's
  validation split, or a cross-validation), (data, row, '', runner-up) for the row
  whose mean validation figure is best among the rows with every seed finished (the
  runner-up: the next best, None if alone), or (data, None, why, None) where those
  rows cannot be compared (a row without a validation figure, or rows chosen by
  different metrics). `data` names the protocol where it is a cross-validation
  ('ucr/ECG5000 (5-fold CV)'). Refits (not validated) are never candidates. Test
  columns play no part; ties keep the row listed first."""
  by_data = {}
  for row in rows:
    if row['finished'] and row['finished'] == row['seeds'] and row['validated_by'] != 'refit':
      protocol = f' ({row["validated_by"]})' if row['validated_by'] else ''
      by_data.setdefault(row['data'] + protocol, []).append(row)
  choices = []
  for data, candidates in by_data.items():
    without = [row['variant'] for row in candidates if row['validation']['n'] < row['finished']]
    metrics = sorted({row['select_metric'] for row in candidates})
    if without:
      choices.append((data, None, 'no validation figure: ' + ', '.join(without), None))
    elif len(metrics) > 1:
      choices.append((data, None, 'rows chosen by different metrics: ' + ', '.join(metrics),
                      None))
    else:
      ranked = []  # best first; a row enters after every row it does not improve on
      for row in candidates:
        place = next((i for i, other in enumerate(ranked) if objectives.improves(
            metrics[0], row['validation']['mean'], other['validation']['mean'])), len(ranked))
        ranked.insert(place, row)
      choices.append((data, ranked[0], '', ranked[1] if len(ranked) > 1 else None))
  return choices


def _fmt(summary: dict, digits: int = 3) -> str:
  if summary['n'] == 0:
    return '-'
  if summary['n'] == 1:
    return f'{summary["mean"]:.{digits}f}'
  low, high = summary['ci']
  return (f'{summary["mean"]:.{digits}f} ± {summary["std"]:.{digits}f} '
          f'[{low:.{digits}f}, {high:.{digits}f}]')


def _metric_cells(row: dict, metrics) -> list[str]:
  return [_fmt(row['metrics'][m]) if m in row['metrics'] else '-' for m in metrics]


def _validation_cell(row: dict) -> str:
  validation = row['validation']
  if row['validated_by'] == 'refit' or not validation['n']:  # a refit has no validation split
    return '-'
  return f'{validation["mean"]:.3f} ({row["select_metric"]})'


def _p(value: float) -> str:
  return '-' if np.isnan(value) else ('<0.001' if value < 0.001 else f'{value:.3f}')


def markdown(sweep, rows, runs, source: str, command: str) -> str:
  name = COLUMN_NAMES.get(sweep.metric, sweep.metric)
  lines = [f'# Results of {source}', '', f'Reproduce: `{command}`', '',
           f'Test split. Each cell: mean ± standard deviation over the finished seeds '
           f'[{CONFIDENCE:.0%} t interval of the mean] (for an ensemble row, over its '
           'ensembles: the mean of its members\' calibrated probabilities). AUC is the ROC AUC, accuracy the '
           'argmax accuracy; sensitivity and specificity are at the operating point chosen on '
           'the validation split; ECE is the expected calibration error; macro recall is the '
           'balanced accuracy; jκ the AAMI beat index. Validation: the mean over seeds of '
           'the validation figure each run\'s checkpoint was chosen by (an ensemble\'s: that '
           'figure of its mean prediction; recipes are compared on it, not on the test '
           'columns). A cross-validated row (k-fold CV) has one run per fold of the training '
           'data, validated on that fold and trained with its own seed: its validation '
           'figure is measured on every training example once. A refit row (refit) is the '
           'recipe of the row it names trained again on the training and validation data '
           'together, with what that row chose on validation carried over (its steps, '
           'temperature, binary threshold): no validation figure, never a candidate of the '
           'choice. '
           'Comparisons are '
           'with the baseline of the same data set and validation (or the variant named in '
           'the cell): '
           f'difference of mean {name}, paired t-test '
           'over seeds, and DeLong\'s test on the seed-averaged test probabilities (AUC of '
           'binary tasks).', '']
  reference_metrics = sorted({m for ref in sweep.reference.values() for m in ref},
                             key=lambda m: (m != sweep.metric, m))
  header = (['variant', 'data', 'seeds', 'params'] +
            [COLUMN_NAMES.get(m, m) for m in sweep.table_metrics] +
            ([' / '.join(COLUMN_NAMES.get(m, m) for m in reference_metrics) + ' in ' +
              (sweep.reference_name or 'reference')] if reference_metrics else []) +
            ['validation (selection metric)', 'train s (mean)', f'Δ{name} vs baseline',
             'p (paired t)', 'p (DeLong)'])
  lines += ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  for row in rows:
    runs_cell = f'{row["finished"]}/{row["seeds"]}'
    if row['ensemble_size']:
      runs_cell += f' ensembles of {row["ensemble_size"]}'
    if row['validated_by']:
      runs_cell += f' ({row["validated_by"]})'
    cells = [row['variant'], row['data'].split('/')[-1], runs_cell,
             f'{row["num_params"]:,}' if row['num_params'] else '-']
    cells += _metric_cells(row, sweep.table_metrics)
    if reference_metrics:
      ref = row['reference']
      cells.append(' / '.join(f'{ref[m]:.3f}' if m in ref else '-' for m in reference_metrics)
                   if ref else '-')
    cells.append(_validation_cell(row))
    trained = row['finished'] and not row['ensemble_size']
    cells.append(f'{row["train_seconds"]["mean"]:.0f}' if trained else '-')
    comparison = row.get('comparison')
    if comparison:
      named = '' if row['baseline'] in sweep.baselines else f' (vs {row["baseline"]})'
      cells += [f'{comparison["difference"]:+.3f}{named}', _p(comparison['ttest_p']),
                _p(comparison['delong_p'])]
    else:
      cells += ['(baseline)' if row['variant'] in sweep.baselines else '-', '-', '-']
    lines.append('| ' + ' | '.join(cells) + ' |')
  lines += ['', '## Chosen on validation', '',
            'Per data set (and per validation protocol where rows are cross-validated), the '
            'row with the best mean validation figure (its selection '
            'metric) among the rows with every seed finished: the recipe this study keeps; '
            'beside it the runner-up on validation, to show by how much it was chosen; '
            'below it its refit on the training and validation data, where the study has '
            'one.', '',
            '| data | chosen | validation (selection metric) | runner-up (validation) | ' +
            ' | '.join(COLUMN_NAMES.get(m, m) for m in sweep.table_metrics) + ' |',
            '|' + '---|' * (4 + len(sweep.table_metrics))]
  for data, row, why, runner_up in chosen(rows):
    if row is None:
      lines.append(f'| {data.split("/")[-1]} | none ({why}) |' + ' - |' * (
          2 + len(sweep.table_metrics)))
      continue
    second = (f'{runner_up["variant"]} ({runner_up["validation"]["mean"]:.4f} against '
              f'{row["validation"]["mean"]:.4f})' if runner_up else '-')
    cells = [data.split('/')[-1], row['variant'], _validation_cell(row), second,
             *_metric_cells(row, sweep.table_metrics)]
    lines.append('| ' + ' | '.join(cells) + ' |')
    for refit in (other for other in rows if other['refit_of'] == row['variant']):
      lines.append(f'| {data.split("/")[-1]} | its refit: {refit["variant"]} '
                   f'({refit["finished"]}/{refit["seeds"]}) | - | - | ' +
                   ' | '.join(_metric_cells(refit, sweep.table_metrics)) + ' |')
  lines += ['', '## Runs', '',
            f'| run | test {name} [bootstrap CI] | accuracy | validation | train s |',
            '|---|---|---|---|---|']
  unfinished = []
  for run in runs:
    values = run_values(run)
    if values is None:
      unfinished.append(run.name)
      continue
    ci = values['intervals'].get(sweep.metric)
    ci_text = f' [{ci[0]:.3f}, {ci[1]:.3f}]' if ci else ''
    seconds = '-' if run.members else f'{values["train_seconds"]:.0f}'
    validation = ('-' if values['validation'] is None else
                  f'{values["validation"]:.3f} ({values["select_metric"]})')
    lines.append(f'| {run.name} | {values["values"][sweep.metric]:.3f}{ci_text} | '
                 f'{values["values"]["accuracy"]:.3f} | {validation} | {seconds} |')
  if unfinished:
    lines += ['', f'Not finished ({len(unfinished)}): ' + ', '.join(unfinished)]
  return '\n'.join(lines) + '\n'


def csv_text(rows) -> str:
  metric_names = sorted({m for row in rows for m in row['metrics']})
  header = ['variant', 'data', 'finished', 'seeds', 'num_params', 'train_seconds_mean',
            'select_metric', 'validated_by', 'validation_mean']
  for m in metric_names:
    header += [f'{m}_mean', f'{m}_std', f'{m}_ci_low', f'{m}_ci_high']
  header += ['baseline', 'difference', 'ttest_p', 'delong_p', 'delong_ci_low',
             'delong_ci_high']
  buffer = io.StringIO()
  writer = csv.writer(buffer, lineterminator='\n')
  writer.writerow(header)
  for row in rows:
    cells = [row['variant'], row['data'], row['finished'], row['seeds'], row['num_params'],
             row['train_seconds']['mean'], row['select_metric'], row['validated_by'],
             row['validation']['mean']]
    for m in metric_names:
      s = row['metrics'].get(m, summarise([]))
      cells += [s['mean'], s['std'], *s['ci']]
    comparison = row.get('comparison', {})
    cells += [row.get('baseline', ''), comparison.get('difference', ''),
              comparison.get('ttest_p', ''), comparison.get('delong_p', ''),
              *comparison.get('delong_ci', ('', ''))]
    writer.writerow(cells)
  return buffer.getvalue()


def bar_plot(rows, path, metric: str = 'auc'):
  """Mean test `metric` per variant with its t interval; published figures as crosses."""
  figure, axis = plt.subplots(figsize=(max(4, 0.8 * len(rows) + 1), 3.5))
  positions = np.arange(len(rows))
  means = np.asarray([row['metrics'].get(metric, summarise([]))['mean'] for row in rows])
  lows = np.asarray([row['metrics'].get(metric, summarise([]))['ci'][0] for row in rows])
  highs = np.asarray([row['metrics'].get(metric, summarise([]))['ci'][1] for row in rows])
  errors = np.nan_to_num(np.stack([means - lows, highs - means]))
  axis.bar(positions, np.nan_to_num(means), yerr=errors, capsize=4, color='tab:blue',
           label=f'medjax (mean, {CONFIDENCE:.0%} CI)')
  references = [row['reference'].get(metric, np.nan) for row in rows]
  if not np.all(np.isnan(references)):
    axis.scatter(positions, references, marker='x', color='tab:red', zorder=3,
                 label='reference')
  axis.set_xticks(positions, [row['variant'] for row in rows], rotation=45, ha='right')
  finite = means[np.isfinite(means)]
  axis.set_ylim(max(0.0, (finite.min() if finite.size else 0.5) - 0.1), 1.0)
  axis.set_ylabel(f'test {COLUMN_NAMES.get(metric, metric)}')
  axis.legend(loc='lower right', fontsize='small')
  report.save_figure(figure, path)


def write(sweep, runs, workdir, source: str, command: str) -> list[pathlib.Path]:
  """Writes results.md (which names `command` as the way to reproduce it), results.csv
  and results.png into `workdir`; returns their paths."""
  workdir = pathlib.Path(workdir)
  rows = collect(sweep, runs)
  paths = [workdir / 'results.md', workdir / 'results.csv', workdir / 'results.png']
  files.write_text_atomic(paths[0], markdown(sweep, rows, runs, source, command))
  files.write_text_atomic(paths[1], csv_text(rows))
  bar_plot(rows, paths[2], sweep.metric)
  return paths


def publish(runs, published_runs) -> int:
  """Copies the RUN_FILES of each finished run in `runs` to the run of the same name in
  `published_runs` (the sweep laid out in another folder); returns how many it copied.

  A published folder is small enough to commit, and it survives the machine: the
  table can be rebuilt from it, and a sweep continued from a copy of it skips its runs.
  """
  destination_of = {run.name: run for run in published_runs}
  copied = 0
  for run in runs:
    if not run.finished:
      continue
    for name in RUN_FILES:
      if (run.workdir / name).exists():
        files.copy_atomic(run.workdir / name, destination_of[run.name].workdir / name)
    copied += 1
  return copied
