"""Sweeps: a tiny sweep end to end, skipping finished runs, failures, and the statistics."""
import csv
import dataclasses
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from medjax import ablate, clinical, sweep, sweep_report

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY_FIELDS = {'train.steps': 2, 'train.eval_every': 2, 'train.checkpoint_every': 2,
               'train.batch_size': 16, 'train.progress_bar': False,
               'data.eval_batch_size': 64, 'explain.num_images': 0,
               'eval.bootstrap_resamples': 20}
SWEEP_FILE = f'''
from medjax.sweep import Sweep, Variant, product

TINY = {TINY_FIELDS!r}

def get_sweep():
  lr = {{'lr1e-3': {{'optim.learning_rate': 1e-3}}, 'lr1e-2': {{'optim.learning_rate': 1e-2}}}}
  variants = tuple(Variant(v.name, {{**TINY, **v.overrides}}) for v in product(lr))
  return Sweep(base='configs/breast_cnn.py', seeds=(0, 1), baseline='lr1e-3',
               variants=variants + (Variant('broken', {{**TINY, 'model.name': 'nope'}}),
                                    Variant('lr1e-3-ensemble', ensemble_of='lr1e-3')))
'''


def run_ablate(*args):
  env = {**os.environ, 'PYTHONPATH': str(REPO)}
  env.pop('XLA_FLAGS')  # one CPU device per run: these processes test the runner
  return subprocess.run([sys.executable, '-m', 'medjax.ablate', *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=900)


@pytest.fixture(scope='module')
def swept(tmp_path_factory):
  folder = tmp_path_factory.mktemp('sweep')
  (folder / 'tiny.py').write_text(SWEEP_FILE)
  result = run_ablate(str(folder / 'tiny.py'), f'--workdir={folder / "out"}', '--jobs=2')
  return folder, result


def test_a_failing_variant_is_reported_and_the_others_complete(swept):
  folder, result = swept
  assert result.returncode == 1, result.stderr[-3000:]
  assert '2 run(s) failed: broken/seed0, broken/seed1' in result.stderr
  assert "model.name='nope'" in (folder / 'out' / 'broken' / 'seed0' / 'run.log').read_text()
  for variant in ('lr1e-3', 'lr1e-2'):
    for seed in (0, 1):
      run_dir = folder / 'out' / variant / f'seed{seed}'
      assert (run_dir / 'eval' / 'test' / 'metrics.json').exists()
      assert json.loads((run_dir / 'config.json').read_text())['seed'] == seed
  # The ensemble variant evaluated the two seeds of lr1e-3 as one model, after them.
  ensemble_dir = folder / 'out' / 'lr1e-3-ensemble' / 'ensemble0'
  members = json.loads((ensemble_dir / 'ensemble.json').read_text())['members']
  assert members == [str(folder / 'out' / 'lr1e-3' / f'seed{seed}') for seed in (0, 1)]
  assert json.loads((ensemble_dir / 'eval' / 'test' / 'metrics.json').read_text())['ensemble']


def test_the_table_has_one_row_per_variant(swept):
  folder, _ = swept
  table = (folder / 'out' / 'results.md').read_text()
  rows = [line for line in table.splitlines() if line.startswith('| lr') or
          line.startswith('| broken')]
  assert [row.split(' | ')[0] for row in rows[:4]] == ['| lr1e-3', '| lr1e-2', '| broken',
                                                        '| lr1e-3-ensemble']
  assert '(baseline)' in rows[0] and '| 2/2 |' in rows[0] and '| 0/2 |' in rows[2]
  assert '| 1/1 ensembles of 2 |' in rows[3] and rows[3].endswith('| - | - | - | - |')
  assert 'Not finished (2): broken/seed0, broken/seed1' in table
  # The rule, applied: the best mean validation AUC among the finished rows.
  validation = {variant: np.mean([json.loads(
      (folder / 'out' / variant / f'seed{s}' / 'train_summary.json').read_text())[
          'best_validation'] for s in (0, 1)]) for variant in ('lr1e-3', 'lr1e-2')}
  validation['lr1e-3-ensemble'] = json.loads(
      (folder / 'out' / 'lr1e-3-ensemble' / 'ensemble0' / 'eval' / 'test' /
       'metrics.json').read_text())['best_validation']
  best = max(validation, key=validation.get)  # the first of equals, as the rule
  chosen = table.split('## Chosen on validation')[1].split('## Runs')[0]
  second = max((v for v in validation if v != best), key=validation.get)
  assert (f'| breastmnist | {best} | {validation[best]:.3f} (auc) | {second} '
          f'({validation[second]:.4f} against {validation[best]:.4f}) |') in chosen
  with open(folder / 'out' / 'results.csv') as f:
    by_variant = {row['variant']: row for row in csv.DictReader(f)}
  assert set(by_variant) == {'lr1e-3', 'lr1e-2', 'broken', 'lr1e-3-ensemble'}
  assert by_variant['lr1e-2']['baseline'] == 'lr1e-3' and by_variant['broken']['finished'] == '0'
  assert (folder / 'out' / 'results.png').stat().st_size > 0


def _row(variant, data, validation, metric='auc', finished=2, validated_by='', refit_of=''):
  """A row of `sweep_report.collect` as `chosen` reads it: 2 seeds, `finished` of them."""
  return {'variant': variant, 'data': data, 'finished': finished, 'seeds': 2,
          'select_metric': metric, 'validation': sweep_report.summarise(validation),
          'validated_by': validated_by, 'refit_of': refit_of}


def test_the_chosen_recipe_is_the_best_validation_of_comparable_finished_rows():
  rows = [_row('a', 'x', [0.9, 0.8]), _row('b', 'x', [0.95, 0.8]),
          _row('c', 'x', [0.99], finished=1),  # unfinished: not a candidate
          _row('d', 'y', [0.3, 0.3], 'loss'), _row('e', 'y', [0.2, 0.3], 'loss'),
          _row('f', 'z', [0.9, 0.9]), _row('g', 'z', []),
          _row('h', 'w', [0.9, 0.9]), _row('i', 'w', [0.2, 0.2], 'loss')]
  choices = {data: (row and row['variant'], why, runner_up and runner_up['variant'])
             for data, row, why, runner_up in sweep_report.chosen(rows)}
  assert choices == {'x': ('b', '', 'a'), 'y': ('e', '', 'd'),
                     'z': (None, 'no validation figure: g', None),
                     'w': (None, 'rows chosen by different metrics: auc, loss', None)}
  # Ties keep the row listed first; a lone row has no runner-up.
  tied = [_row('p', 'v', [0.9, 0.8]), _row('q', 'v', [0.8, 0.9]), _row('r', 'v', [0.7, 0.7]),
          _row('s', 'u', [0.5, 0.5])]
  assert [(row['variant'], runner_up and runner_up['variant'])
          for _, row, _, runner_up in sweep_report.chosen(tied)] == [('p', 'q'), ('s', None)]
  # Cross-validated rows are compared with each other, not with the holdout's rows.
  protocols = [_row('a', 'x', [0.9, 0.9]), _row('b', 'x', [0.8, 0.8], validated_by='2-fold CV'),
               _row('c', 'x', [0.85, 0.85], validated_by='2-fold CV')]
  assert [(data, row['variant']) for data, row, _, _ in sweep_report.chosen(protocols)] == [
      ('x', 'a'), ('x (2-fold CV)', 'c')]
  # A refit has no validation split: never a candidate, whatever its runs report.
  refitted = protocols + [_row('c-refit', 'x', [0.99, 0.99], validated_by='refit',
                               refit_of='c')]
  assert [(data, row['variant']) for data, row, _, _ in sweep_report.chosen(refitted)] == [
      ('x', 'a'), ('x (2-fold CV)', 'c')]


def test_the_statistics_match_a_direct_computation(swept):
  folder, _ = swept
  loaded = sweep.load(folder / 'tiny.py')
  runs = sweep.runs(loaded, folder / 'out')
  rows = {row['variant']: row for row in sweep_report.collect(loaded, runs)}
  auc = {}
  for variant in ('lr1e-3', 'lr1e-2'):
    auc[variant] = np.asarray([
        json.loads((folder / 'out' / variant / f'seed{s}' / 'eval' / 'test' /
                    'metrics.json').read_text())['auc'] for s in (0, 1)])
  best_validation = [json.loads((folder / 'out' / 'lr1e-2' / f'seed{s}' / 'train_summary.json')
                                .read_text())['best_validation'] for s in (0, 1)]
  assert rows['lr1e-2']['validation']['mean'] == pytest.approx(np.mean(best_validation))
  assert rows['lr1e-2']['select_metric'] == 'auc'
  ensemble = json.loads((folder / 'out' / 'lr1e-3-ensemble' / 'ensemble0' / 'eval' / 'test' /
                         'metrics.json').read_text())
  assert rows['lr1e-3-ensemble']['validation']['mean'] == pytest.approx(
      ensemble['best_validation'])
  summary = rows['lr1e-2']['metrics']['auc']
  assert summary['mean'] == pytest.approx(auc['lr1e-2'].mean())
  assert summary['std'] == pytest.approx(auc['lr1e-2'].std(ddof=1))
  half = stats.t.ppf(0.975, 1) * auc['lr1e-2'].std(ddof=1) / np.sqrt(2)
  assert summary['ci'] == pytest.approx((auc['lr1e-2'].mean() - half,
                                         auc['lr1e-2'].mean() + half))
  comparison = rows['lr1e-2']['comparison']
  assert comparison['difference'] == pytest.approx((auc['lr1e-2'] - auc['lr1e-3']).mean())
  assert comparison['ttest_p'] == pytest.approx(stats.ttest_rel(auc['lr1e-2'],
                                                                auc['lr1e-3']).pvalue)

  def mean_prob(variant):
    probs = []
    for s in (0, 1):
      with open(folder / 'out' / variant / f'seed{s}' / 'eval' / 'test' / 'predictions.csv') as f:
        rows_csv = sorted(csv.DictReader(f), key=lambda r: int(r['index']))
      probs.append([float(r['prob_1']) for r in rows_csv])
      labels = [int(r['label']) for r in rows_csv]
    return np.mean(probs, axis=0), np.asarray(labels)

  (a, labels), (b, _) = mean_prob('lr1e-2'), mean_prob('lr1e-3')
  assert comparison['delong_p'] == pytest.approx(clinical.delong_test(labels, a, b)['p_value'])
  # The ECE's sampling floor of each run, from its test probabilities.
  floors = []
  for s in (0, 1):
    with open(folder / 'out' / 'lr1e-2' / f'seed{s}' / 'eval' / 'test' / 'predictions.csv') as f:
      floors.append(clinical.ece_sampling_floor([float(r['prob_1']) for r in csv.DictReader(f)]))
  assert rows['lr1e-2']['metrics']['ece_floor']['mean'] == pytest.approx(np.mean(floors))


def test_rerunning_skips_finished_runs_and_report_only_rebuilds(swept):
  folder, _ = swept
  finished = folder / 'out' / 'lr1e-3' / 'seed0' / 'eval' / 'test' / 'metrics.json'
  written = finished.stat().st_mtime_ns
  result = run_ablate(str(folder / 'tiny.py'), f'--workdir={folder / "out"}',
                      '--only=lr*', '--dry-run')
  assert result.returncode == 0
  assert [line.split('\t')[:2] for line in result.stdout.splitlines()] == [
      [f'{v}/seed{s}', 'finished'] for v in ('lr1e-3', 'lr1e-2') for s in (0, 1)] + [
      ['lr1e-3-ensemble/ensemble0', 'finished']]
  result = run_ablate(str(folder / 'tiny.py'), f'--workdir={folder / "out"}', '--only=lr*')
  assert result.returncode == 0, result.stderr[-3000:]
  assert '5 of 5 runs already finished; running 0' in result.stderr
  assert finished.stat().st_mtime_ns == written
  (folder / 'out' / 'results.md').unlink()
  result = run_ablate(str(folder / 'tiny.py'), f'--workdir={folder / "out"}', '--report-only')
  assert result.returncode == 0 and (folder / 'out' / 'results.md').exists()


def _table_rows(path) -> list[str]:
  return [line for line in path.read_text().splitlines() if line.startswith('| ')]


def test_published_runs_rebuild_the_table_and_accumulate(swept, tmp_path):
  folder, _ = swept
  published = tmp_path / 'published'
  result = run_ablate(str(folder / 'tiny.py'), f'--workdir={folder / "out"}', '--report-only',
                      f'--publish={published}')
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'published 5 finished run(s)' in result.stderr
  kept = sorted(str(path.relative_to(published)) for path in published.rglob('*')
                if path.is_file() and ('seed' in str(path) or 'ensemble0' in str(path)))
  assert kept == sorted([f'{v}/seed{s}/{name}' for v in ('lr1e-3', 'lr1e-2') for s in (0, 1)
                         for name in sweep_report.RUN_FILES] +
                        [f'lr1e-3-ensemble/ensemble0/{name}' for name in sweep_report.RUN_FILES
                         if name != sweep_report.SUMMARY_FILE])
  assert _table_rows(published / 'results.md') == _table_rows(folder / 'out' / 'results.md')
  # Another machine's workdir holding only some runs publishes into the same folder:
  # the runs published before stay, and so does their row.
  partial = tmp_path / 'partial'
  shutil.copytree(folder / 'out' / 'lr1e-3', partial / 'lr1e-3')
  result = run_ablate(str(folder / 'tiny.py'), f'--workdir={partial}', '--report-only',
                      f'--publish={published}')
  assert result.returncode == 0, result.stderr[-3000:]
  assert '| 0/2 |' in next(r for r in _table_rows(partial / 'results.md') if '| lr1e-2' in r)
  assert _table_rows(published / 'results.md') == _table_rows(folder / 'out' / 'results.md')
  # A sweep continued from a copy of the published folder counts its runs as finished.
  result = run_ablate(str(folder / 'tiny.py'), f'--workdir={published}', '--only=lr*',
                      '--dry-run')
  assert all(line.split('\t')[1] == 'finished' for line in result.stdout.splitlines())
  result = run_ablate(str(folder / 'tiny.py'), f'--workdir={published}', f'--publish={published}')
  assert result.returncode == 2 and 'another folder than --workdir' in result.stderr


def test_a_variant_can_name_its_own_baseline(swept):
  folder, _ = swept
  loaded = sweep.load(folder / 'tiny.py')
  by_name = {v.name: v for v in loaded.variants}
  renamed = dataclasses.replace(
      loaded, variants=(by_name['lr1e-3'], by_name['lr1e-2'], by_name['broken'],
                        by_name['lr1e-3-ensemble'],
                        dataclasses.replace(by_name['lr1e-3'], name='lr1e-3-again',
                                            baseline='lr1e-2'),
                        dataclasses.replace(by_name['lr1e-3'], name='lr1e-3-vs-broken',
                                            baseline='broken')))
  runs = sweep.runs(renamed, folder / 'out')
  runs = [dataclasses.replace(run, workdir=folder / 'out' / 'lr1e-3' / f'seed{run.seed}')
          if run.variant.name.startswith('lr1e-3-') and not run.members else run
          for run in runs]
  rows = {row['variant']: row for row in sweep_report.collect(renamed, runs)}
  assert rows['lr1e-2']['baseline'] == 'lr1e-3'  # the data set's baseline
  assert rows['lr1e-3-again']['baseline'] == 'lr1e-2'
  assert (rows['lr1e-3-again']['comparison']['difference'] ==
          pytest.approx(-rows['lr1e-2']['comparison']['difference']))
  assert 'comparison' not in rows['lr1e-3-vs-broken']  # its baseline finished no run
  table = sweep_report.markdown(renamed, list(rows.values()), runs, 'tiny.py', 'command')
  row_of = {line.split(' | ')[0][2:]: line for line in table.splitlines() if line.startswith('| ')}
  assert '(vs lr1e-2)' in row_of['lr1e-3-again']
  assert row_of['lr1e-3-vs-broken'].endswith('| - | - | - |')


@pytest.mark.parametrize('text,message', [
    ('x = 1\n', 'defines no get_sweep()'),
    ('from medjax.sweep import Sweep, Variant\n'
     'def get_sweep():\n'
     "  return Sweep(base='configs/breast_cnn.py', variants=(Variant('a', {'train.stepz': 1}),))\n",
     "unknown config field 'train.stepz'"),
    ('from medjax.sweep import Sweep, Variant\n'
     'def get_sweep():\n'
     "  return Sweep(base='configs/breast_cnn.py', variants=(Variant('a'), Variant('a')))\n",
     "duplicate variant names ['a']"),
    ('from medjax.sweep import Sweep, Variant\n'
     'def get_sweep():\n'
     "  return Sweep(base='configs/breast_cnn.py', variants=(Variant('a'),), baseline='b')\n",
     "baseline ['b'] is not a variant"),
    ('from medjax.sweep import Sweep, Variant\n'
     'def get_sweep():\n'
     "  return Sweep(base='configs/breast_cnn.py', variants=(Variant('a', baseline='c'),))\n",
     "baseline ['c'] is not a variant"),
    ('from medjax.sweep import Sweep, Variant\n'
     'def get_sweep():\n'
     "  return Sweep(base='configs/breast_cnn.py', seeds=(0, 1),\n"
     "               variants=(Variant('a'), Variant('e', ensemble_of='b')))\n",
     "variant 'e': ensemble_of='b' is not a trained variant"),
    ('from medjax.sweep import Sweep, Variant\n'
     'def get_sweep():\n'
     "  return Sweep(base='configs/breast_cnn.py', seeds=(0, 1),\n"
     "               variants=(Variant('a'), Variant('e', ensemble_of='a',\n"
     "                                               ensemble_seeds=((0, 2),))))\n",
     "ensemble_seeds ((0, 2),) must be non-empty groups of the seeds (0, 1)"),
    ('from medjax.sweep import Sweep, Variant\n'
     'def get_sweep():\n'
     "  return Sweep(base='configs/breast_cnn.py',\n"
     "               variants=(Variant('a'), Variant('e', ensemble_of=('a', 'b'))))\n",
     "variant 'e': ensemble_of='b' is not a trained variant"),
    ('from medjax.sweep import Sweep, Variant\n'
     'def get_sweep():\n'
     "  return Sweep(base='configs/breast_cnn.py',\n"
     "               variants=(Variant('a'), Variant('e', ensemble_of=('a', 'a'))))\n",
     "variant 'e': ensemble_of=('a', 'a') names a variant twice"),
])
def test_bad_sweep_files_are_refused(tmp_path, monkeypatch, text, message):
  monkeypatch.chdir(REPO)
  path = tmp_path / 'bad.py'
  path.write_text(text)
  with pytest.raises(sweep.SweepError, match=re.escape(message)):
    sweep.load(path)


def test_an_ensemble_variant_passes_its_evaluation_overrides(tmp_path):
  views = sweep.Variant('v', {'eval.tta': 'hflip,shift'}, ensemble_of='a',
                        ensemble_seeds=((0,), (1,)))
  loaded = sweep.Sweep(base='configs/breast_cnn.py', seeds=(0, 1),
                       variants=(sweep.Variant('a'), views))
  sweep.check(loaded, 'test')
  ensembles = [run for run in sweep.runs(loaded, tmp_path) if run.members]
  assert [run.members for run in ensembles] == [(tmp_path / 'a' / 'seed0',),
                                                (tmp_path / 'a' / 'seed1',)]
  assert ensembles[1].command_args() == [
      '--mode=eval', f'--workdir={tmp_path / "v" / "ensemble1"}',
      f'--ensemble={tmp_path / "a" / "seed1"}', '--tta=hflip,shift']
  trains = dataclasses.replace(views, overrides={'train.steps': 3})
  with pytest.raises(sweep.SweepError, match=re.escape("cannot override ['train.steps']")):
    sweep.check(dataclasses.replace(loaded, variants=(sweep.Variant('a'), trains)), 'test')


def test_an_ensemble_of_several_variants_holds_each_ones_runs_of_its_seed_group(tmp_path):
  unlike = sweep.Variant('a+b', ensemble_of=('a', 'b'), ensemble_seeds=((0,), (1,)))
  loaded = sweep.Sweep(base='configs/breast_cnn.py', seeds=(0, 1),
                       variants=(sweep.Variant('a'), sweep.Variant('b', {'model.name': 'resnet'}),
                                 unlike))
  sweep.check(loaded, 'test')
  ensembles = [run for run in sweep.runs(loaded, tmp_path) if run.members]
  assert [run.members for run in ensembles] == [
      (tmp_path / 'a' / 'seed0', tmp_path / 'b' / 'seed0'),
      (tmp_path / 'a' / 'seed1', tmp_path / 'b' / 'seed1')]


def test_a_variant_with_its_own_seeds_gives_independent_ensembles(tmp_path):
  nine = tuple(range(9))
  groups = ((0, 1, 2), (3, 4, 5), (6, 7, 8))
  loaded = sweep.Sweep(base='configs/breast_cnn.py', seeds=(0, 1, 2), variants=(
      sweep.Variant('a', seeds=nine), sweep.Variant('b'),
      sweep.Variant('a-ensembles', ensemble_of='a', ensemble_seeds=groups),
      sweep.Variant('a-all', ensemble_of='a'), sweep.Variant('a+b', ensemble_of=('a', 'b'))))
  sweep.check(loaded, 'test')
  listed = sweep.runs(loaded, tmp_path)
  trained = {}
  for run in listed:
    if not run.members:
      trained.setdefault(run.variant.name, []).append(run.seed)
  assert trained == {'a': list(nine), 'b': [0, 1, 2]}
  members = {}
  for run in listed:
    if run.members:
      members.setdefault(run.variant.name, []).append(run.members)
  assert members['a-ensembles'] == [tuple(tmp_path / 'a' / f'seed{s}' for s in group)
                                    for group in groups]
  assert members['a-all'] == [tuple(tmp_path / 'a' / f'seed{s}' for s in nine)]
  # Several variants: by default the seeds all of them were trained with.
  assert members['a+b'] == [tuple(tmp_path / name / f'seed{s}' for name in ('a', 'b')
                                  for s in (0, 1, 2))]
  beyond = sweep.Variant('a+b', ensemble_of=('a', 'b'), ensemble_seeds=((3, 4, 5),))
  with pytest.raises(sweep.SweepError, match=re.escape('seeds (0, 1, 2) its members')):
    sweep.check(dataclasses.replace(loaded, variants=loaded.variants[:4] + (beyond,)), 'test')
  seeded = sweep.Variant('a-all', ensemble_of='a', seeds=(0,))
  with pytest.raises(sweep.SweepError, match='an ensemble variant has no seeds or folds'):
    sweep.check(dataclasses.replace(loaded, variants=loaded.variants[:2] + (seeded,)), 'test')


def test_a_cross_validated_variant_runs_one_fold_each_and_ensembles_fold_by_fold(tmp_path):
  loaded = sweep.Sweep(base='configs/ecg5000_resnet1d.py', seeds=(0, 1), variants=(
      sweep.Variant('a'), sweep.Variant('a-cv', cv_folds=3),
      sweep.Variant('b-cv', {'model.name': 'linear'}, cv_folds=3),
      sweep.Variant('ab-cv', ensemble_of=('a-cv', 'b-cv'), ensemble_seeds=((0,), (1,), (2,)))))
  sweep.check(loaded, 'test')
  listed = sweep.runs(loaded, tmp_path)
  assert [run.name for run in listed] == [
      'a/seed0', 'a/seed1', 'a-cv/fold0', 'a-cv/fold1', 'a-cv/fold2', 'b-cv/fold0',
      'b-cv/fold1', 'b-cv/fold2', 'ab-cv/ensemble0', 'ab-cv/ensemble1', 'ab-cv/ensemble2']
  assert listed[4].command_args()[2:] == ['--config.seed=2', '--config.data.cv_folds=3',
                                          '--config.data.cv_fold=2']
  assert listed[0].command_args()[2:] == ['--config.seed=0']
  assert listed[-1].members == (tmp_path / 'a-cv' / 'fold2', tmp_path / 'b-cv' / 'fold2')
  variant_of = {variant.name: variant for variant in loaded.variants}
  assert [sweep.validation_of(variant, variant_of) for variant in loaded.variants] == [
      '', '3-fold CV', '3-fold CV', '3-fold CV']
  mixed = sweep.Variant('a+a-cv', ensemble_of=('a', 'a-cv'), ensemble_seeds=((0,),))
  with pytest.raises(sweep.SweepError, match='its members are validated differently'):
    sweep.check(dataclasses.replace(loaded, variants=loaded.variants[:2] + (mixed,)), 'test')
  for bad in (sweep.Variant('c', cv_folds=1), sweep.Variant('c', cv_folds=3, seeds=(0,))):
    with pytest.raises(sweep.SweepError, match='must be at least 2, and sets the seeds'):
      sweep.check(dataclasses.replace(loaded, variants=(bad,)), 'test')
  for bad in (sweep.Variant('c', {'data.cv_fold': 1}, cv_folds=3),
              sweep.Variant('c', {'data.cv_folds': 3})):
    with pytest.raises(sweep.SweepError, match=re.escape('cross-validate with Variant(cv_folds')):
      sweep.check(dataclasses.replace(loaded, variants=(bad,)), 'test')
  with pytest.raises(sweep.SweepError, match='cannot be a folder name'):
    sweep.check(dataclasses.replace(loaded, variants=(sweep.Variant('x/fold1'),)), 'test')


def _finish(workdir, best_step, temperature, solver=None, threshold=None):
  """What a finished run leaves for a refit to read (`threshold`: a binary task's)."""
  (workdir / 'eval' / 'test').mkdir(parents=True)
  summary = {'best_step': best_step, 'steps': 500, **({'solver': solver} if solver else {})}
  (workdir / 'train_summary.json').write_text(json.dumps(summary))
  result = {'calibration': {'temperature': temperature},
            **({'operating_point': {'threshold': threshold}} if threshold else {})}
  (workdir / sweep.TEST_METRICS_FILE).write_text(json.dumps(result))


def test_a_refit_carries_over_what_its_recipes_runs_chose_and_waits_for_them(tmp_path,
                                                                             monkeypatch):
  loaded = sweep.Sweep(base='configs/ecg5000_resnet1d.py', seeds=(0, 1), variants=(
      sweep.Variant('a-cv', {'optim.learning_rate': 3e-4}, cv_folds=2),
      sweep.Variant('r-cv', config='configs/ecg5000_rocket_ridge.py', cv_folds=2),
      sweep.Variant('ar-cv', ensemble_of=('a-cv', 'r-cv'), ensemble_seeds=((0,), (1,))),
      sweep.Variant('a-views', {'eval.tta': 'shift'}, ensemble_of='a-cv',
                    ensemble_seeds=((0,), (1,))),
      sweep.Variant('a-refit', refit_of='a-cv'), sweep.Variant('r-refit', refit_of='r-cv'),
      sweep.Variant('ar-refit', ensemble_of=('a-refit', 'r-refit'),
                    ensemble_seeds=((0,), (1,)), refit_of='ar-cv'),
      sweep.Variant('a-views-refit', ensemble_of='a-refit', ensemble_seeds=((0,), (1,)),
                    refit_of='a-views')))
  sweep.check(loaded, 'test')
  listed = {run.name: run for run in sweep.runs(loaded, tmp_path)}
  refit = listed['a-refit/seed1']
  assert refit.refits == (tmp_path / 'a-cv' / 'fold0', tmp_path / 'a-cv' / 'fold1')
  assert refit.waits_for == refit.refits
  with pytest.raises(sweep.SweepError, match='needs the finished runs of the recipe it refits'):
    refit.command_args()
  _finish(tmp_path / 'a-cv' / 'fold0', best_step=100, temperature=2.0)
  _finish(tmp_path / 'a-cv' / 'fold1', best_step=301, temperature=0.5)
  assert refit.waits_for == ()
  assert refit.command_args() == [
      '--config=configs/ecg5000_resnet1d.py', f'--workdir={tmp_path / "a-refit" / "seed1"}',
      '--config.optim.learning_rate=0.0003', '--config.seed=1', '--config.data.refit=True',
      '--config.train.steps=200', '--config.optim.schedule_steps=500',
      '--config.eval.temperature=1.0']  # the mean step; the geometric mean temperature
  # A ridge head chooses by leave-one-out: only a binary task's threshold is carried over.
  for fold, threshold in ((0, 0.25), (1, 0.75)):
    _finish(tmp_path / 'r-cv' / f'fold{fold}', best_step=3, temperature=1.0, solver='ridge',
            threshold=threshold)
  assert listed['r-refit/seed0'].command_args()[2:] == [
      '--config.seed=0', '--config.data.refit=True', '--config.eval.operating_threshold=0.5']
  variant_of = {variant.name: variant for variant in loaded.variants}
  assert [sweep.validation_of(v, variant_of) for v in loaded.variants[4:]] == ['refit'] * 4
  assert listed['ar-refit/ensemble1'].members == (tmp_path / 'a-refit' / 'seed1',
                                                  tmp_path / 'r-refit' / 'seed1')
  # An ensemble of refits decides at the mean threshold of the ensembles it refits and,
  # evaluated with their test-time views, at the temperatures they fitted with them.
  for name, validated_name in (('ar-refit', 'ar-cv'), ('a-views-refit', 'a-views')):
    ensemble_refit = listed[f'{name}/ensemble1']
    validated = tuple(tmp_path / validated_name / f'ensemble{number}' for number in (0, 1))
    assert ensemble_refit.refits == validated
    assert set(validated) <= set(ensemble_refit.waits_for)
    for workdir, threshold, temperature in zip(validated, (0.25, 0.75), (0.5, 2.0)):
      (workdir / 'eval' / 'test').mkdir(parents=True)
      (workdir / sweep.TEST_METRICS_FILE).write_text(json.dumps({
          'operating_point': {'threshold': threshold},
          'ensemble': [{'temperature': temperature}]}))
  assert listed['ar-refit/ensemble1'].command_args()[3:] == ['--operating_threshold=0.5']
  assert listed['a-views-refit/ensemble1'].command_args()[3:] == [
      '--tta=shift', '--operating_threshold=0.5', '--temperature=1.0']
  # The runner trains the refits after the runs they need, then the ensembles, then the
  # ensembles of refits.
  order = []

  def execute(run):
    run.command_args()  # a refit's overrides are known by now
    order.append(run.name)
    if run.members:
      (run.workdir / 'eval' / 'test').mkdir(parents=True)
      (run.workdir / sweep.TEST_METRICS_FILE).write_text(
          json.dumps({'ensemble': [{'temperature': 1.0}]}))
    else:
      _finish(run.workdir, 100, 1.0, solver='ridge' if run.name.startswith('r-') else None)
    return 0, 0.0

  monkeypatch.setattr(ablate, 'execute', execute)
  fresh = sweep.runs(loaded, tmp_path / 'fresh')[::-1]
  assert ablate.run_sweep(fresh, 1, lambda run: None) == {run.name: 0 for run in fresh}
  kinds = [('ensemble' if '/ensemble' in name else 'refit' if '-refit/' in name else 'fold')
           for name in order]
  assert kinds == ['fold'] * 4 + ['refit'] * 4 + ['ensemble'] * 8
  assert all(name.split('/')[0].endswith('-refit') for name in order[-4:])
  for bad, message in (
      (sweep.Variant('x', refit_of='nope'), "refit_of='nope' is not a trained variant"),
      (sweep.Variant('x', {'train.steps': 3}, refit_of='a-cv'), 'it takes no overrides'),
      (sweep.Variant('x', {'eval.tta': 'shift'}, ensemble_of=('a-refit', 'r-refit'),
                     ensemble_seeds=((0,),), refit_of='ar-cv'), 'it takes no overrides'),
      (sweep.Variant('x', ensemble_of=('a-refit',), refit_of='ar-cv'),
       "its members refit ['a-cv'], not the members of 'ar-cv'"),
      ((sweep.Variant('y', {'eval.tta': 'shift'}, ensemble_of=('a-cv', 'r-cv')),
        sweep.Variant('x', ensemble_of=('a-refit', 'r-refit'), refit_of='y')),
       'refits of several recipes cannot be evaluated with test-time views'),
      (sweep.Variant('x', ensemble_of=('a-refit', 'a-cv'), ensemble_seeds=((0,),)),
       'its members are validated differently')):
    added = bad if isinstance(bad, tuple) else (bad,)
    with pytest.raises(sweep.SweepError, match=re.escape(message)):
      sweep.check(dataclasses.replace(loaded, variants=loaded.variants + added), 'test')


def test_product_names_and_merges_overrides():
  variants = sweep.product({'a': {'x.y': 1}, 'b': {'x.y': 2}}, {'c': {'z': 3}})
  assert [(v.name, v.overrides) for v in variants] == [
      ('a-c', {'x.y': 1, 'z': 3}), ('b-c', {'x.y': 2, 'z': 3})]


@pytest.mark.parametrize('path', sorted((pathlib.Path(__file__).parents[1] / 'experiments')
                                        .glob('*.py')), ids=lambda path: path.stem)
def test_committed_sweep_files_load(path):
  # A renamed config field or config file must fail here, not hours into a study.
  sweep.load(path)  # raises SweepError naming the field or file
