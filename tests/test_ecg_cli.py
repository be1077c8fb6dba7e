"""ECG end to end through the command line: train tiny UCR and MIT-BIH models, then
predict on a UCR-layout CSV and on WFDB records with no data set on the machine."""
import csv
import json
import os

import numpy as np
import pytest
import wfdb

from tests.conftest import run_cli

FAST = ['--config.train.steps=4', '--config.train.eval_every=2', '--config.train.log_every=2',
        '--config.train.checkpoint_every=2', '--config.train.batch_size=16',
        '--config.train.progress_bar=False', '--config.eval.bootstrap_resamples=20',
        '--config.explain.num_images=2', '--config.explain.smoothgrad_samples=2',
        '--config.explain.ig_steps=4']
UCR = ['--config=configs/ecg5000_resnet1d.py', '--config.model.resnet1d.width=8', *FAST]
MITDB = ['--config=configs/mitdb_resnet1d.py', '--config.model.resnet1d.width=8',
         '--config.model.mlp.hidden=8', '--config.data.mitdb.train_records=101',
         '--config.data.mitdb.val_records=118', '--config.data.mitdb.test_records=100', *FAST]


def _no_data(tmp_path) -> dict:
  """An environment where neither raw nor prepared data exist."""
  (tmp_path / 'no_data').mkdir()
  (tmp_path / 'no_prepared').mkdir()
  return {'MEDJAX_DATA_DIR': str(tmp_path / 'no_data'),
          'MEDJAX_PREPARED_DIR': str(tmp_path / 'no_prepared')}


def _trained(tmp_path_factory, name: str, args: list[str]):
  workdir = tmp_path_factory.mktemp(name) / 'run'
  result = run_cli(*args, f'--workdir={workdir}')
  assert result.returncode == 0, result.stderr[-3000:]
  return workdir


@pytest.fixture(scope='module')
def ucr_run(tmp_path_factory):
  return _trained(tmp_path_factory, 'ucr', UCR)


@pytest.fixture(scope='module')
def mitdb_run(tmp_path_factory):
  return _trained(tmp_path_factory, 'mitdb', MITDB)


def test_ucr_run_reports_and_selects_by_validation_loss(ucr_run):
  metrics = json.loads((ucr_run / 'eval' / 'test' / 'metrics.json').read_text())
  assert metrics['num_examples'] == 4500 and metrics['select_metric'] == 'loss'  # the config's
  assert len(metrics['per_class']) == 5 and 'balanced_accuracy' in metrics['metrics']
  assert len(list((ucr_run / 'eval' / 'test' / 'saliency').glob('*.png'))) == 2


def test_predict_on_a_ucr_layout_csv_without_the_data_set(ucr_run, tmp_path):
  series = np.random.default_rng(0).normal(size=(2, 140))
  lines = [','.join(['?'] + [f'{v:.4f}' for v in row]) for row in series]
  lines.insert(1, '1,0.5,oops,0.2')
  (tmp_path / 'new.csv').write_text('\n'.join(lines) + '\n')
  output = tmp_path / 'out.csv'
  result = run_cli('--mode=predict', f'--workdir={ucr_run}', f'--input={tmp_path / "new.csv"}',
                   f'--output={output}', env=_no_data(tmp_path))
  assert result.returncode == 1, result.stderr[-2000:]  # one line failed, the others done
  rows = list(csv.DictReader(output.open()))
  assert [row['status'] for row in rows] == ['ok', 'error', 'ok']
  assert "'oops' is not a number" in rows[1]['error'] and 'new.csv:2' in result.stderr
  for noise in ('read_only', 'read only'):  # nothing from the read-only checkpoint manager
    assert noise not in result.stderr
  for row in (rows[0], rows[2]):
    assert sum(float(row[f'prob_{k}']) for k in '12345') == pytest.approx(1, abs=1e-5)
    assert row['decision'] in list('12345')


def test_mitdb_run_reports_aami_scores_with_record_intervals(mitdb_run):
  metrics = json.loads((mitdb_run / 'eval' / 'test' / 'metrics.json').read_text())
  assert metrics['select_metric'] == 'jkappa'
  assert metrics['aami']['bootstrap'] == 'records' and metrics['aami']['num_groups'] == 1
  assert set(metrics['aami']['per_class']) == {'N', 'S', 'V', 'F', 'Q'}
  task = json.loads((mitdb_run / 'task.json').read_text())
  assert set(task['inputs']) == {'signal', 'tabular'} and len(task['inputs']['tabular']['mean']) == 8


def _cut_record(tmp_path, name, seconds, annotate):
  """The first `seconds` of record 100 as a new WFDB record (with its beat annotations)."""
  source = os.path.join(os.environ['MEDJAX_DATA_DIR'], 'mitdb', '100')
  record = wfdb.rdrecord(source, sampto=int(seconds * 360))
  wfdb.wrsamp(name, fs=360, units=record.units, sig_name=record.sig_name,
              p_signal=record.p_signal, fmt=['212', '212'], write_dir=str(tmp_path))
  if annotate:
    annotation = wfdb.rdann(source, 'atr', sampto=int(seconds * 360))
    wfdb.wrann(name, 'atr', annotation.sample, annotation.symbol, write_dir=str(tmp_path))
    return int(np.sum(np.isin(annotation.symbol, list('NLRejAaJSVEF/fQ'))))
  return None


def test_predict_on_wfdb_records_without_the_data_set(mitdb_run, tmp_path):
  records = tmp_path / 'records'
  records.mkdir()
  annotated = _cut_record(records, 'annotated', 20, annotate=True)
  _cut_record(records, 'detected', 20, annotate=False)
  (records / 'broken.hea').write_text('broken 2 360\n')
  output = tmp_path / 'beats.csv'
  result = run_cli('--mode=predict', f'--workdir={mitdb_run}', f'--input={records}',
                   f'--output={output}', '--saliency', '--saliency_limit=3',
                   env=_no_data(tmp_path))
  assert result.returncode == 1, result.stderr[-2000:]  # the broken record
  # Record 100 has MLII and V5: the V1 the model reads is named as missing.
  assert f'{records / "annotated"}: has no lead V1' in result.stderr
  assert len(list((tmp_path / 'saliency').glob('*.png'))) == 3  # not one per beat
  assert 'saliency overlays of the first 3 of' in result.stderr
  rows = list(csv.DictReader(output.open()))
  by_record = {}
  for row in rows:
    by_record.setdefault(os.path.basename(row['input']).split('@')[0], []).append(row)
  assert [r['status'] for r in by_record['broken']] == ['error']
  # Beats from the annotation file (less those too near the ends for a window) ...
  assert annotated - 2 <= len(by_record['annotated']) <= annotated
  # ... and found by XQRS where there is none: about the same beats.
  assert abs(len(by_record['detected']) - len(by_record['annotated'])) <= 3
  assert all(r['decision'] in 'NSVFQ' and r['status'] == 'ok' for r in by_record['detected'])
