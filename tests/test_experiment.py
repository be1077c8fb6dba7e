"""The command line: config errors, a tiny run end to end, and eval reproducing it."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def run_cli(*args):
  env = {**os.environ, 'PYTHONPATH': str(REPO)}
  return subprocess.run([sys.executable, '-m', 'medjax.experiment', *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=600)


TINY = ['--config=configs/breast_cnn.py', '--config.train.steps=4', '--config.train.eval_every=2',
        '--config.train.checkpoint_every=2', '--config.train.batch_size=16',
        '--config.train.progress_bar=False', '--config.data.eval_batch_size=64']


@pytest.mark.parametrize('args,message', [
    (['--config.train.stepz=3'], "unknown config field 'train.stepz'"),
    (['--config.train.steps=many'], 'many'),
    (['--config.model.name=7'], None),
    (['--mode=predict'], 'predict'),
])
def test_config_errors_are_one_line_with_exit_code_2(tmp_path, args, message):
  result = run_cli('--config=configs/breast_cnn.py', f'--workdir={tmp_path}', *args)
  if args == ['--config.model.name=7']:
    # A string field accepts "7"; the registry then names the bad value.
    assert result.returncode == 1 and "model.name='7'" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / 'eval').exists()
    return
  assert result.returncode == 2, result.stderr
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('medjax: error:') and message in lines[0]


def test_unknown_field_in_a_config_file_is_refused(tmp_path):
  config_file = tmp_path / 'typo.py'
  config_file.write_text('from configs import breast_cnn\n\n'
                         'def get_config():\n'
                         '  config = breast_cnn.get_config()\n'
                         '  config.train.learning_rate = 0.1\n'
                         '  return config\n')
  result = run_cli(f'--config={config_file}', f'--workdir={tmp_path / "w"}')
  assert result.returncode == 2
  assert result.stderr.strip() == "medjax: error: unknown config field 'train.learning_rate'"
  assert not (tmp_path / 'w').exists()


def test_wrong_type_in_a_config_file_is_refused(tmp_path):
  config_file = tmp_path / 'wrong.py'
  config_file.write_text('from configs import breast_cnn\n\n'
                         'def get_config():\n'
                         '  config = breast_cnn.get_config()\n'
                         '  config.unlock()\n'
                         '  config.train.steps = "ten"\n'
                         '  return config\n')
  result = run_cli(f'--config={config_file}', f'--workdir={tmp_path / "w"}')
  assert result.returncode == 2
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and 'steps' in lines[0] and 'ten' in lines[0]


def test_eval_without_a_trained_workdir_is_refused(tmp_path):
  result = run_cli('--mode=eval', f'--workdir={tmp_path}')
  assert result.returncode == 2 and 'config.json not found' in result.stderr


def test_train_then_eval_reproduces_the_metrics_exactly(tmp_path):
  workdir = tmp_path / 'run'
  result = run_cli(*TINY, f'--workdir={workdir}')
  assert result.returncode == 0, result.stderr[-3000:]
  metrics_file = workdir / 'eval' / 'test' / 'metrics.json'
  trained = metrics_file.read_text()
  metrics = json.loads(trained)
  assert metrics['num_examples'] == 156 and metrics['split'] == 'test'
  assert 0 <= metrics['accuracy'] <= 1 and 0 <= metrics['auc'] <= 1 and metrics['loss'] > 0
  config = json.loads((workdir / 'config.json').read_text())
  assert config['train']['steps'] == 4 and config['model']['name'] == 'cnn'
  logged = [json.loads(line) for line in (workdir / 'logs' / 'metrics.jsonl').open()]
  assert {'train/loss', 'val/auc'} <= {key for record in logged for key in record}
  assert list((workdir / 'logs' / 'tensorboard').glob('events.out.tfevents.*'))
  predictions = (workdir / 'eval' / 'test' / 'predictions.csv').read_text().splitlines()
  assert predictions[0] == 'index,label,prob_0,prob_1' and len(predictions) == 157

  metrics_file.unlink()
  result = run_cli('--mode=eval', f'--workdir={workdir}')
  assert result.returncode == 0, result.stderr[-3000:]
  assert metrics_file.read_text() == trained

  # Rerunning the training command resumes at the last step: nothing left to train.
  result = run_cli(*TINY, f'--workdir={workdir}')
  assert result.returncode == 0 and 'resuming from step 4' in result.stderr
  assert metrics_file.read_text() == trained
