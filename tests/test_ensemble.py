"""`--mode=eval --ensemble=W1,W2,...`: several workdirs evaluated as one model."""
import json
import shutil

import pytest

from tests.conftest import run_cli


def _test_metrics(workdir, name='test'):
  return json.loads((workdir / 'eval' / name / 'metrics.json').read_text())


@pytest.mark.parametrize('copies', [1, 2])
def test_an_ensemble_of_one_model_equals_that_model(trained, tmp_path, copies):
  members = [trained]
  for index in range(1, copies):
    members.append(tmp_path / f'copy{index}')
    shutil.copytree(trained, members[-1])
  out = tmp_path / 'ensemble'
  result = run_cli('--mode=eval', f'--workdir={out}',
                   f'--ensemble={",".join(str(m) for m in members)}')
  assert result.returncode == 0, result.stderr[-3000:]
  single, ensemble = _test_metrics(trained), _test_metrics(out)
  assert len(ensemble['ensemble']) == copies and ensemble['model'] == '+'.join(['cnn'] * copies)
  assert ensemble['num_params'] == copies * single['num_params']
  for key in ('accuracy', 'auc', 'num_examples', 'metrics', 'counts', 'operating_point'):
    assert ensemble[key] == single[key], key
  assert ((out / 'eval' / 'test' / 'predictions.csv').read_text() ==
          (trained / 'eval' / 'test' / 'predictions.csv').read_text())
  assert json.loads((out / 'operating_point.json').read_text()) == single['operating_point']
  assert json.loads((out / 'ensemble.json').read_text())['members'] == [str(m) for m in members]


def test_members_of_different_data_sets_are_refused(trained, tmp_path):
  other = tmp_path / 'other'
  shutil.copytree(trained, other)
  config = json.loads((other / 'config.json').read_text())
  config['data']['name'] = 'medmnist/pneumoniamnist'
  (other / 'config.json').write_text(json.dumps(config))
  out = tmp_path / 'ensemble'
  result = run_cli('--mode=eval', f'--workdir={out}', f'--ensemble={trained},{other}')
  assert result.returncode == 2
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and 'different data sets' in lines[0]
  assert not out.exists()
  result = run_cli('--mode=predict', f'--workdir={out}', f'--ensemble={trained}',
                   f'--input={tmp_path}')
  assert result.returncode == 2 and '--mode=eval only' in result.stderr
