"""Surviving faults with real processes: SIGKILL and SIGTERM mid-run, a corrupt
checkpoint, and a 2-process job on localhost matching a single process."""
import json
import pathlib
import shutil
import signal
import socket
import subprocess
import time

import numpy as np

from tests.conftest import REPO, TINY, cli_command, cli_env, run_cli


def _logged(workdir, key='train/loss') -> dict:
  """{step: value} of one logged metric."""
  path = pathlib.Path(workdir) / 'logs' / 'metrics.jsonl'
  if not path.exists():
    return {}
  records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
  return {r['step']: r[key] for r in records if key in r}


def _start(workdir, *extra, env=None, log_name='run.log'):
  """Starts a run; its output goes to a file beside the workdir (a pipe nobody reads
  can fill up and stall the process)."""
  log = pathlib.Path(workdir).parent / log_name
  with open(log, 'w') as output:
    process = subprocess.Popen(cli_command(*TINY, f'--workdir={workdir}', *extra), cwd=REPO,
                               env=env or cli_env(), stdout=output, stderr=subprocess.STDOUT)
  process.log = log
  return process


def _wait_for_step(process, workdir, step: int):
  """Waits until the run has logged `step` (or has ended)."""
  deadline = time.monotonic() + 300
  while max(_logged(workdir), default=0) < step and process.poll() is None:
    assert time.monotonic() < deadline, 'the run did not reach the step in time'
    time.sleep(0.01)


def _final_params(workdir):
  import orbax.checkpoint as ocp
  with ocp.CheckpointManager(pathlib.Path(workdir).absolute() / 'checkpoints',
                             item_names=('state', 'meta')) as manager:
    restored = manager.restore(8, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
  return restored.state['params']


def test_sigkill_mid_run_then_rerun_gives_bit_identical_parameters_and_metrics(trained,
                                                                               tmp_path):
  workdir = tmp_path / 'killed'
  process = _start(workdir)
  _wait_for_step(process, workdir, 4)
  process.kill()  # SIGKILL: no handler runs, a checkpoint may be half written
  process.wait()
  killed_at = max(_logged(workdir))
  assert 4 <= killed_at < 8 and not (workdir / 'eval').exists(), 'killed too late'
  result = run_cli(*TINY, f'--workdir={workdir}')
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'resuming from step' in result.stderr
  import jax
  jax.tree.map(np.testing.assert_array_equal, _final_params(workdir), _final_params(trained))
  for name in ('metrics.json', 'predictions.csv'):
    assert ((workdir / 'eval' / 'test' / name).read_text() ==
            (trained / 'eval' / 'test' / name).read_text())


def test_sigterm_saves_a_checkpoint_and_exits_with_a_message(tmp_path):
  workdir = tmp_path / 'preempted'
  process = _start(workdir, '--config.train.steps=100000')
  _wait_for_step(process, workdir, 3)
  process.send_signal(signal.SIGTERM)
  process.wait(timeout=300)
  stderr = process.log.read_text()
  assert process.returncode == 143, stderr[-3000:]
  last = stderr.strip().splitlines()[-1]
  assert last.startswith('medjax: error: stopped by SIGTERM at step ') and 'rerun' in last
  step = int(last.split('at step ')[1].split(';')[0])
  assert 3 <= step < 100000
  assert str(step) in [p.name for p in (workdir / 'checkpoints').iterdir()]
  assert not (workdir / 'eval').exists()


def test_a_corrupt_newest_checkpoint_is_reported_and_the_previous_one_used(trained, tmp_path):
  workdir = tmp_path / 'corrupt'
  shutil.copytree(trained, workdir)
  (workdir / 'eval' / 'test' / 'metrics.json').unlink()
  damaged = 0
  for path in (workdir / 'checkpoints' / '8' / 'state').rglob('*'):
    if path.is_file() and path.stat().st_size > 64:
      path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])  # truncated
      damaged += 1
  assert damaged
  result = run_cli(*TINY, f'--workdir={workdir}')
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'checkpoint 8 in' in result.stderr and 'is unreadable' in result.stderr
  assert 'resuming from step 7' in result.stderr
  assert (workdir / 'corrupt_checkpoints' / '8').is_dir()
  assert ((workdir / 'eval' / 'test' / 'metrics.json').read_text() ==
          (trained / 'eval' / 'test' / 'metrics.json').read_text())


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def test_two_processes_on_localhost_match_one_process(trained, tmp_path):
  workdir = tmp_path / 'two'
  port = _free_port()
  processes = []
  for index in range(2):
    env = {**cli_env(), 'JAX_COORDINATOR_ADDRESS': f'127.0.0.1:{port}',
           'JAX_NUM_PROCESSES': '2', 'JAX_PROCESS_ID': str(index)}
    processes.append(_start(workdir, '--distributed', '--config.explain.num_images=0',
                            env=env, log_name=f'process{index}.log'))
  for process in processes:
    process.wait(timeout=600)
    assert process.returncode == 0, process.log.read_text()[-3000:]
  two, one = _logged(workdir), _logged(trained)
  assert sorted(two) == list(range(1, 9))
  np.testing.assert_allclose([two[s] for s in sorted(two)], [one[s] for s in sorted(two)],
                             rtol=1e-5)
  metrics_two = json.loads((workdir / 'eval' / 'test' / 'metrics.json').read_text())
  metrics_one = json.loads((trained / 'eval' / 'test' / 'metrics.json').read_text())
  assert metrics_two['num_examples'] == 156
  assert abs(metrics_two['auc'] - metrics_one['auc']) < 1e-4
