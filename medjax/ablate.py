"""`python -m medjax.ablate`: run every (variant, seed) of a sweep file, then tabulate.

  python -m medjax.ablate experiments/medmnist_v2.py --workdir=workdirs/medmnist_v2
  python -m medjax.ablate experiments/medmnist_v2.py --workdir=... --jobs=2
  python -m medjax.ablate experiments/medmnist_v2.py --workdir=... --only='breast/*'
  python -m medjax.ablate experiments/medmnist_v2.py --workdir=... --dry-run
  python -m medjax.ablate experiments/medmnist_v2.py --workdir=... --report-only
  python -m medjax.ablate experiments/medmnist_v2.py --workdir=... --publish=experiments/results/X

Each run is an ordinary `python -m medjax.experiment` process writing
`<workdir>/<variant>/seed<k>/` (`fold<k>/` for a cross-validated variant; its output
in `run.log` there); ensemble variants
(`Variant.ensemble_of`) are evaluated after the training runs, in
`<workdir>/<variant>/ensemble<k>/`, and refits (`Variant.refit_of`) are trained after
the runs of the recipe they refit. Finished runs
(with `eval/test/metrics.json`) are skipped, so a stopped sweep continues where it
was; a half-done run resumes from its checkpoint. A failing run is reported and
the others go on. `results.md`, `results.csv` and `results.png` are rebuilt from
the finished runs at the end. Exit code: 0 when every run finished, 1 when some
failed, 2 for a bad sweep file or flag.

`--publish=DIR` copies what the table is built from (each finished run's training
summary, test metrics and test predictions; no checkpoints or config) into DIR in the
same layout, each run as it finishes, and writes the results there at the end: a folder to commit, from which
`--report-only --workdir=DIR` rebuilds the table, and which, copied into a fresh
workdir, lets a sweep continue on another machine without rerunning those runs.
"""
import concurrent.futures
import fnmatch
import os
import pathlib
import subprocess
import sys
import time

from absl import app, flags

from medjax import sweep as sweep_lib
from medjax import sweep_report

_WORKDIR = flags.DEFINE_string('workdir', None, 'folder of the sweep: one sub-folder per run')
_JOBS = flags.DEFINE_integer('jobs', 1, 'runs at the same time (each a separate process)')
_ONLY = flags.DEFINE_list('only', [], 'run only variants matching these glob patterns')
_DRY_RUN = flags.DEFINE_bool('dry-run', False, 'list the runs and their state; run nothing')
_REPORT_ONLY = flags.DEFINE_bool('report-only', False, 'rebuild the results from finished runs')
_PUBLISH = flags.DEFINE_string('publish', None, "also copy the finished runs' results (no "
                               'checkpoints) into this folder and tabulate them there')

USAGE_EXIT_CODE = 2


def _fail(message: str):
  print(f'medjax.ablate: error: {message}', file=sys.stderr)
  sys.exit(USAGE_EXIT_CODE)


def _child_env() -> dict:
  """The environment of a run: this process's, with this medjax importable first."""
  package_root = str(pathlib.Path(__file__).resolve().parents[1])
  path = os.environ.get('PYTHONPATH', '')
  return {**os.environ, 'PYTHONPATH': package_root + (os.pathsep + path if path else '')}


def execute(run: sweep_lib.Run) -> tuple[int, float]:
  """Runs one experiment process; returns (exit code, seconds)."""
  run.workdir.mkdir(parents=True, exist_ok=True)
  started = time.perf_counter()
  with open(run.workdir / 'run.log', 'a') as log:
    code = subprocess.run([sys.executable, '-m', 'medjax.experiment', *run.command_args()],
                          stdout=log, stderr=subprocess.STDOUT, env=_child_env()).returncode
  return code, time.perf_counter() - started


def run_all(pending: list, jobs: int, on_success=lambda run: None) -> dict:
  """Runs `pending` with `jobs` processes at a time, calling `on_success(run)` as each
  one succeeds; returns {run name: exit code}."""
  codes = {}
  with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
    futures = {pool.submit(execute, run): run for run in pending}
    for future in concurrent.futures.as_completed(futures):
      run = futures[future]
      code, seconds = future.result()
      codes[run.name] = code
      status = 'done' if code == 0 else f'FAILED (exit {code}; see {run.workdir / "run.log"})'
      print(f'[{len(codes)}/{len(pending)}] {run.name}: {status} in {seconds:.0f} s',
            file=sys.stderr, flush=True)
      if code == 0:
        on_success(run)
  return codes


def run_sweep(pending: list, jobs: int, on_success) -> dict:
  """The training runs, then the refits, then the ensembles, then the ensembles of
  refits, each once the runs it needs have finished (the others are reported and left
  for a later call); returns {run name: exit code}."""
  codes = {}
  for phase in ((False, False), (False, True), (True, False), (True, True)):
    waiting = [run for run in pending if (bool(run.members), bool(run.refits)) == phase]
    ready = [run for run in waiting if not run.waits_for]
    for run in waiting:
      if run.waits_for:
        print(f'{run.name}: not run, it needs {len(run.waits_for)} unfinished run(s), e.g. '
              f'{run.waits_for[0]}', file=sys.stderr)
    codes.update(run_all(ready, jobs, on_success))
  return codes


def main(argv):
  if len(argv) != 2:
    _fail('usage: python -m medjax.ablate SWEEP_FILE --workdir=DIR')
  if not _WORKDIR.value:
    _fail('--workdir is required')
  if _JOBS.value < 1:
    _fail(f'--jobs={_JOBS.value}: must be at least 1')
  try:
    sweep = sweep_lib.load(argv[1])
  except sweep_lib.SweepError as error:
    _fail(str(error))
  workdir = pathlib.Path(_WORKDIR.value)
  if _PUBLISH.value and pathlib.Path(_PUBLISH.value).resolve() == workdir.resolve():
    _fail('--publish must name another folder than --workdir')
  all_runs = sweep_lib.runs(sweep, workdir)
  chosen = [run for run in all_runs
            if not _ONLY.value or any(fnmatch.fnmatch(run.variant.name, p) for p in _ONLY.value)]
  if not chosen:
    _fail(f'--only={",".join(_ONLY.value)} matches no variant')
  if _DRY_RUN.value:
    for run in chosen:
      if not run.finished and run.refits and run.waits_for:  # its overrides are not known yet
        print(f'{run.name}\tafter {len(run.waits_for)} unfinished run(s)\t-')
        continue
      state = 'finished' if run.finished else 'to run'
      print(f'{run.name}\t{state}\tpython -m medjax.experiment {" ".join(run.command_args())}')
    return
  published_runs = sweep_lib.runs(sweep, _PUBLISH.value) if _PUBLISH.value else []

  def publish_run(run):  # as each run finishes, so that a lost machine loses nothing
    if published_runs:
      sweep_report.publish([run], published_runs)

  failed = {}
  if not _REPORT_ONLY.value:
    pending = [run for run in chosen if not run.finished]
    print(f'{len(chosen) - len(pending)} of {len(chosen)} runs already finished; '
          f'running {len(pending)} with {_JOBS.value} job(s)', file=sys.stderr, flush=True)
    failed = {name: code for name, code in run_sweep(pending, _JOBS.value, publish_run).items()
              if code}
  command = f'python -m medjax.ablate {argv[1]} --workdir={workdir}'
  if _PUBLISH.value:
    command += f' --publish={_PUBLISH.value}'
  written = sweep_report.write(sweep, all_runs, workdir, argv[1], command)
  if _PUBLISH.value:
    count = sweep_report.publish(all_runs, published_runs)
    print(f'published {count} finished run(s) to {_PUBLISH.value}', file=sys.stderr)
    written += sweep_report.write(sweep, published_runs, _PUBLISH.value, argv[1], command)
  print(f'results: {", ".join(str(path) for path in written)}', file=sys.stderr)
  if failed:
    print(f'{len(failed)} run(s) failed: {", ".join(sorted(failed))}', file=sys.stderr)
    sys.exit(1)


if __name__ == '__main__':
  app.run(main)
