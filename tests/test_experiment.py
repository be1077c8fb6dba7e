"""The command line: config errors, a tiny run end to end, and eval reproducing it."""
import importlib
import json
import pathlib
import re

import pytest

from medjax import config as config_lib
from tests.conftest import REPO, TINY, run_cli


@pytest.mark.parametrize('path', sorted(path for path in (REPO / 'configs').glob('*.py')
                                        if path.stem not in ('common', '__init__')),
                         ids=lambda path: path.stem)
def test_config_files_validate_and_name_their_command(path):
  # A renamed field must fail here, not when a researcher launches the config.
  module = importlib.import_module(f'configs.{path.stem}')
  config_lib.validate(module.get_config())
  assert f'python -m medjax.experiment --config=configs/{path.name}' in module.__doc__


# Through the command line: each way a mistake reaches it (a flag of the wrong field,
# type or mode, a bad value, a value refused only once the data set or mesh is known).
# Every bad value's own message is checked in-process below.
@pytest.mark.parametrize('args,message', [
    (['--config.train.stepz=3'], "unknown config field 'train.stepz'"),
    (['--config.train.steps=many'], 'many'),
    (['--config.mesh.data=0'], 'mesh.data=0'),
    (['--config.mesh.data=64'], 'mesh.data=64'),
    (['--config.train.select_metric=auprc'], "train.select_metric='auprc'"),
    (['--config.data.name=ucr/ECG5000'], "'cnn' reads image inputs"),
    (['--mode=serve'], 'serve'),
])
def test_config_errors_are_one_line_with_exit_code_2(tmp_path, args, message):
  workdir = tmp_path / 'w'
  result = run_cli('--config=configs/breast_cnn.py', f'--workdir={workdir}', *args)
  assert result.returncode == 2, result.stderr
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('medjax: error:') and message in lines[0], lines
  assert not (workdir / 'eval').exists()


@pytest.mark.parametrize('case', [  # field, value, message[, config file]
    ('optim.name', 'adagrad', "optim.name='adagrad' is not one of"),
    ('optim.schedule', 'step', "optim.schedule='step' is not one of"),
    ('optim.learning_rate', float('nan'), "'optim.learning_rate' must be a finite number"),
    ('optim.learning_rate', 0.0, 'optim.learning_rate=0.0 must be positive'),
    ('optim.momentum', 1.0, 'optim.momentum=1.0 must be in [0, 1)'),
    ('train.label_smoothing', 1.0, 'train.label_smoothing=1.0 must be in [0, 1)'),
    ('train.eval_every', 0, 'train.eval_every=0 must be positive'),
    ('train.microbatches', 0, 'train.microbatches=0 must be positive'),
    ('train.nonfinite', 'ignore', "train.nonfinite='ignore' is not one of"),
    ('train.class_weights', 'inverse', "train.class_weights='inverse' is not one of"),
    ('eval.operating_rule', 'f1', "eval.operating_rule='f1' is not one of"),
    ('eval.confidence', 95.0, 'eval.confidence=95.0 must be in (0, 1)'),
    ('eval.bootstrap_resamples', 0, 'eval.bootstrap_resamples=0 must be positive'),
    ('eval.operating_threshold', 1.0, 'eval.operating_threshold=1.0 must be in [0, 1)'),
    ('explain.methods', 'gradients,lime', "explain.methods='gradients,lime'"),
    ('data.augment.rotation_degrees', float('inf'), 'must be a finite number, got inf'),
    ('data.augment.zoom', 1.5, 'data.augment.zoom=1.5 must be in [0, 1)'),
    ('data.augment.noise_std', -0.1, 'data.augment.noise_std=-0.1 must be >= 0'),
    ('data.ucr.split_seed', -1, 'data.ucr.split_seed=-1 must be >= 0', 'ecg5000_resnet1d'),
    ('data.mitdb.leads', 'MLII,V6', "data.mitdb.leads: ['V6'] not among", 'mitdb_resnet1d'),
    ('data.cv_folds', 1, 'data.cv_folds=1 must be 0 (off) or at least 2', 'ecg5000_resnet1d'),
    ('data.cv_folds', 5, 'the medmnist family has a fixed validation split'),
    ('data.cv_folds', 30, 'MIT-BIH folds are whole records', 'mitdb_resnet1d'),
    ('model.name', '7', "model.name='7' is not one of"),
    ('model.resnet.depth', 19, 'model.resnet.depth=19'),
    ('data.image_size', 30, 'data.image_size=30'),
    ('data.name', 'dicom/x', "data.name='dicom/x'"),
    ('data.name', 'medmnist/nosuch', 'medmnist/nosuch'),
    ('data.name', 'medmnist3d/nosuch', 'medmnist3d/nosuch: unknown'),
    ('model.conv_impl', 'fast', "model.conv_impl='fast'"),
    ('data.ucr.val_fraction', 1.5, 'data.ucr.val_fraction=1.5', 'ecg5000_resnet1d'),
    ('data.mitdb.val_records', '104', 'paced', 'mitdb_resnet1d'),
    ('data.mitdb.val_records', '100', 'records [100] are in both val and test', 'mitdb_resnet1d'),
    ('model.inception_time.kernel_size', 2, 'model.inception_time'),
    ('model.rocket.kernels', 0, 'model.rocket.kernels=0 must be positive', 'ecg5000_rocket'),
    ('data.prefetch_batches', 0, 'data.prefetch_batches=0 must be at least 1'),
    ('data.in_memory_mib', -1.0, 'data.in_memory_mib=-1.0 must be >= 0'),
    ('train.ema_decay', 1.5, 'train.ema_decay=1.5 must be in [0, 1)'),
    ('train.solver', 'newton', "train.solver='newton' is not one of"),
])
def test_bad_values_are_refused_before_any_data(case):
  field, value, message, *config_file = case
  config = importlib.import_module(f'configs.{(config_file or ["breast_cnn"])[0]}').get_config()
  config_lib.validate(config)
  section, _, leaf = field.rpartition('.')
  node = config
  for part in section.split('.'):
    node = node[part]
  node[leaf] = value
  with pytest.raises(config_lib.ConfigError, match=re.escape(message)):
    config_lib.validate(config)


@pytest.mark.parametrize('config_text,message', [
    (None, 'no_such_config.py'),
    ('raise RuntimeError("broken on purpose")\n', 'broken on purpose'),
    ('def get_config(:\n', 'SyntaxError'),
])
def test_a_config_file_that_cannot_load_is_one_line(tmp_path, config_text, message):
  config_file = tmp_path / 'no_such_config.py'
  if config_text is not None:
    config_file.write_text(config_text)
  result = run_cli(f'--config={config_file}', f'--workdir={tmp_path / "w"}')
  assert result.returncode == 2, result.stderr
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and message in lines[0], lines
  assert not (tmp_path / 'w').exists()


def test_a_workdir_that_is_a_file_is_one_line(tmp_path):
  workdir = tmp_path / 'results.txt'
  workdir.write_text('not a folder')
  result = run_cli('--config=configs/breast_cnn.py', f'--workdir={workdir}')
  assert result.returncode == 2
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and 'is a file, not a folder' in lines[0]
  assert workdir.read_text() == 'not a folder'


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


def test_train_writes_config_logs_metrics_and_reports(trained):
  metrics = json.loads((trained / 'eval' / 'test' / 'metrics.json').read_text())
  assert metrics['num_examples'] == 156 and metrics['split'] == 'test'
  assert 0 <= metrics['accuracy'] <= 1 and 0 <= metrics['auc'] <= 1 and metrics['loss'] > 0
  assert metrics['positive_class'] == 'malignant'  # as configs/breast_cnn.py says
  auc = metrics['metrics']['auc']
  assert auc['value'] == pytest.approx(metrics['auc'], abs=1e-3)  # same AUC, other class
  assert auc['ci'][0] <= auc['value'] <= auc['ci'][1] and auc['ci'][0] < auc['ci'][1]
  counts = metrics['counts']
  assert sum(counts.values()) == 156
  config = json.loads((trained / 'config.json').read_text())
  assert config['train']['steps'] == 8 and config['model']['name'] == 'cnn'
  logged = [json.loads(line) for line in (trained / 'logs' / 'metrics.jsonl').open()]
  assert {'train/loss', 'val/auc'} <= {key for record in logged for key in record}
  assert list((trained / 'logs' / 'tensorboard').glob('events.out.tfevents.*'))
  predictions = (trained / 'eval' / 'test' / 'predictions.csv').read_text().splitlines()
  assert predictions[0] == 'index,label,prob_0,prob_1' and len(predictions) == 157
  out = trained / 'eval' / 'test'
  for name in ('roc.png', 'pr.png', 'reliability.png', 'confusion.png', 'report.md'):
    assert (out / name).stat().st_size > 0
  overlays = sorted(p.name for p in (out / 'saliency').iterdir())
  assert len(overlays) == 2 and all(name.endswith('.png') for name in overlays)
  assert 'roc.png' in (out / 'report.md').read_text()


def test_eval_mode_reproduces_the_training_end_metrics_exactly(trained):
  metrics_file = trained / 'eval' / 'test' / 'metrics.json'
  written_by_training = metrics_file.read_text()
  metrics_file.unlink()
  result = run_cli('--mode=eval', f'--workdir={trained}')
  assert result.returncode == 0, result.stderr[-3000:]
  assert metrics_file.read_text() == written_by_training


def test_eval_of_another_checkpoint_and_split(trained):
  result = run_cli('--mode=eval', f'--workdir={trained}', '--checkpoint=7', '--split=val')
  assert result.returncode == 0, result.stderr[-3000:]
  metrics = json.loads((trained / 'eval' / 'val-7' / 'metrics.json').read_text())
  assert (metrics['step'], metrics['split'], metrics['num_examples']) == (7, 'val', 78)
  result = run_cli('--mode=eval', f'--workdir={trained}', '--checkpoint=3')
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1].startswith('medjax: error:') and \
      'no 3 checkpoint' in result.stderr
  assert not (trained / 'eval' / 'test-3').exists()


def test_a_workdir_of_another_experiment_is_refused(trained):
  result = run_cli(*TINY, f'--workdir={trained}', '--config.optim.learning_rate=0.5')
  assert result.returncode == 2
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and 'optim.learning_rate (0.001 -> 0.5)' in lines[0]
  assert '--allow_config_change' in lines[0]


def test_predict_on_dicom_and_png_reports_a_bad_file_and_goes_on(trained, tmp_path):
  import numpy as np
  import PIL.Image
  import pydicom.data
  inputs = tmp_path / 'inputs'
  inputs.mkdir()
  for name in ('CT_small.dcm', 'MR_small.dcm'):
    (inputs / name).write_bytes(pathlib.Path(pydicom.data.get_testdata_file(name)).read_bytes())
  PIL.Image.fromarray(np.full((64, 48), 120, np.uint8)).save(inputs / 'grey.png')
  (inputs / 'truncated.png').write_bytes(b'\x89PNG\r\n\x1a\n broken')
  output = tmp_path / 'out' / 'predictions.csv'
  result = run_cli('--mode=predict', f'--workdir={trained}', f'--input={inputs}',
                   f'--output={output}', '--saliency')
  assert result.returncode == 1  # one file failed ...
  assert 'truncated.png' in result.stderr
  import csv
  rows = {pathlib.Path(r['input']).name: r for r in csv.DictReader(output.open())}
  assert set(rows) == {'CT_small.dcm', 'MR_small.dcm', 'grey.png', 'truncated.png'}
  assert rows['truncated.png']['status'] == 'error' and rows['truncated.png']['error']
  for name in ('CT_small.dcm', 'MR_small.dcm', 'grey.png'):  # ... the others were done
    row = rows[name]
    assert row['status'] == 'ok'
    total = float(row['prob_malignant']) + float(row['prob_normal, benign'])
    assert total == pytest.approx(1.0, abs=1e-5)
    assert row['decision'] in ('malignant', 'normal, benign') and float(row['threshold']) > 0
  assert len(list((output.parent / 'saliency').glob('*.png'))) == 3


@pytest.mark.parametrize('content,message', [(None, 'holds no input'),
                                             ('notes.txt', 'holds no input'),
                                             ('broken.png', 'no readable input')])
def test_predict_without_a_readable_input_fails_and_writes_nothing(trained, tmp_path, content,
                                                                   message):
  inputs = tmp_path / 'inputs'
  inputs.mkdir()
  if content == 'notes.txt':
    (inputs / content).write_text('not an image')
  elif content == 'broken.png':
    (inputs / content).write_bytes(b'\x89PNG\r\n\x1a\n broken')
  output = tmp_path / 'out' / 'predictions.csv'
  result = run_cli('--mode=predict', f'--workdir={trained}', f'--input={inputs}',
                   f'--output={output}')
  assert result.returncode == 1
  assert message in result.stderr.strip().splitlines()[-1]
  assert not output.parent.exists()
