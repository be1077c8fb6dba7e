"""`python -m medjax.experiment`: train, or evaluate a trained workdir.

  python -m medjax.experiment --config=configs/breast_cnn.py --workdir=workdirs/breast_cnn
  python -m medjax.experiment --config=configs/breast_cnn.py --config.train.steps=100 ...
  python -m medjax.experiment --mode=eval --workdir=workdirs/breast_cnn [--split=val] [--checkpoint=latest]
  python -m medjax.experiment --mode=predict --workdir=workdirs/breast_cnn --input=scans/

Training resumes from the latest checkpoint when the workdir has one (the same
config; another config in that workdir is refused unless --allow_config_change).
SIGTERM saves a checkpoint and exits with code 143. `--distributed` joins a
multi-process job (one process per host; see medjax/parallel.py). `--mode=eval`
and `--mode=predict` need no config: they read `<workdir>/config.json` and the best
checkpoint. Config mistakes exit with code 2 and one line; other failures with
code 1 (for predict: when any input file could not be read; the others are done).
"""
import json
import pathlib
import sys

from absl import flags, logging
from ml_collections import config_flags

from medjax import config as config_lib
from medjax import files

_CONFIG = config_flags.DEFINE_config_file('config', None, 'experiment config file',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'folder for checkpoints, logs and results')
_MODE = flags.DEFINE_enum('mode', 'train', ['train', 'eval', 'predict'],
                          'train (then test), eval a split, or predict on new files')
_SPLIT = flags.DEFINE_enum('split', 'test', ['train', 'val', 'test'], 'split for --mode=eval')
_CHECKPOINT = flags.DEFINE_string('checkpoint', 'best', '--mode=eval/predict: best, latest '
                                  'or a step number')
_INPUT = flags.DEFINE_string('input', None, '--mode=predict: a file or a folder in the '
                             "data family's format (images: PNG/JPEG/DICOM; UCR: CSV/TSV "
                             'series; MIT-BIH: WFDB records)')
_OUTPUT = flags.DEFINE_string('output', None, '--mode=predict: the CSV to write '
                              '(default <workdir>/predict/predictions.csv)')
_SALIENCY = flags.DEFINE_bool('saliency', False, '--mode=predict: also write saliency overlays')
_SALIENCY_LIMIT = flags.DEFINE_integer('saliency_limit', 64, '--mode=predict --saliency: explain '
                                       'at most this many inputs (the first ones; a WFDB '
                                       'record holds thousands of beats)', lower_bound=1)
_ENSEMBLE = flags.DEFINE_list('ensemble', [], '--mode=eval: evaluate these trained workdirs '
                              'as one model (the mean of their calibrated probabilities), '
                              'writing the results into --workdir')
_TTA = flags.DEFINE_string('tta', None, '--mode=eval/predict: test-time views replacing the '
                           "stored eval.tta (e.g. hflip,shift; '' for none), of every "
                           'member with --ensemble. To keep a run\'s own test results, write '
                           'elsewhere: --ensemble=RUN --workdir=NEW')
_OPERATING_THRESHOLD = flags.DEFINE_float(
    'operating_threshold', None, '--mode=eval: decide a binary task at this threshold, in '
    '(0, 1), instead of the one chosen on validation (an ensemble of refits: the threshold '
    'of the validated ensemble it refits). In a run\'s own workdir it replaces the stored '
    'one that --mode=predict reads; elsewhere: --ensemble=RUN --workdir=NEW')
_TEMPERATURE = flags.DEFINE_float(
    'temperature', None, '--mode=eval: divide the logits of every model by this '
    'temperature, > 0, instead of their own (an ensemble of refits evaluated with '
    'test-time views: the temperature the validated ensemble fitted with them). In a run\'s '
    'own workdir it replaces the stored one that --mode=predict reads')
_DISTRIBUTED = flags.DEFINE_bool('distributed', False, 'join a multi-process job '
                                 '(jax.distributed.initialize; see medjax/parallel.py)')
_ALLOW_CONFIG_CHANGE = flags.DEFINE_bool('allow_config_change', False, 'train in a workdir '
                                         'whose config.json differs from --config')

CONFIG_EXIT_CODE = 2
PREEMPTED_EXIT_CODE = 143  # 128 + SIGTERM, as a shell reports a process SIGTERM stopped
# Where a run's files live, not what it computes: these may differ on a resume.
LOCATION_FIELDS = ('data.data_dir', 'data.prepared_dir', 'compile.cache_dir',
                   'train.progress_bar')


def _fail(message: str, code: int):
  print(f'medjax: error: {message}', file=sys.stderr)
  sys.exit(code)


def _flag_error(error: Exception) -> str:
  """One line for a flag or config file that cannot be read: a missing --config file,
  one that fails to import (its exception named), a bad override."""
  cause = error.__cause__ or error.__context__
  text = ' '.join(str(error).split())
  if cause is not None and type(cause).__name__ not in text:
    text += f' ({type(cause).__name__}: {" ".join(str(cause).split())})'
  if not isinstance(error, (flags.Error, ValueError, AttributeError, KeyError, TypeError)):
    text = f'{type(error).__name__}: {text}'
  return text


def _stored_config(workdir: pathlib.Path):
  stored = workdir / 'config.json'
  try:
    return config_lib.from_json(stored.read_text())
  except (ValueError, KeyError, TypeError) as error:
    _fail(f'{stored} is not a valid medjax config ({error})', CONFIG_EXIT_CODE)


def _ensemble_configs(members: list[str]) -> list:
  """The members' stored configs; they must be trained on one data set."""
  configs = []
  for member in members:
    path = pathlib.Path(member)
    if not (path / 'config.json').exists():
      _fail(f'--ensemble: {path / "config.json"} not found: a member must be a trained workdir',
            CONFIG_EXIT_CODE)
    configs.append(_with_eval_overrides(_stored_config(path)))
  names = sorted({c.data.name for c in configs})
  if len(names) > 1:
    _fail(f'--ensemble: the members were trained on different data sets ({names})',
          CONFIG_EXIT_CODE)
  return configs


def _resolve_config(workdir: pathlib.Path, mode: str):
  if _ENSEMBLE.value:
    if mode != 'eval':
      _fail('--ensemble works with --mode=eval only', CONFIG_EXIT_CODE)
    return _ensemble_configs(_ENSEMBLE.value)[0]
  for flag, field in ((_OPERATING_THRESHOLD, 'operating_threshold'),
                      (_TEMPERATURE, 'temperature')):
    if flag.value is not None and mode != 'eval':
      _fail(f'--{flag.name} works with --mode=eval; to train with one, '
            f'--config.eval.{field}', CONFIG_EXIT_CODE)
  if mode in ('eval', 'predict'):
    if not (workdir / 'config.json').exists():
      _fail(f'{workdir / "config.json"} not found: --mode={mode} needs a trained workdir',
            CONFIG_EXIT_CODE)
    return _with_eval_overrides(_stored_config(workdir))
  if _CONFIG.value is None:
    _fail('--config is required for --mode=train', CONFIG_EXIT_CODE)
  if _TTA.value is not None:
    _fail('--tta works with --mode=eval/predict; to train with views, --config.eval.tta',
          CONFIG_EXIT_CODE)
  return _CONFIG.value


def _with_eval_overrides(config):
  """A stored config with the evaluation flags applied: how a trained model is
  evaluated may change, what it was trained on may not."""
  if _TTA.value is not None:
    config.eval.tta = _TTA.value
  if _OPERATING_THRESHOLD.value is not None:
    if not 0.0 < _OPERATING_THRESHOLD.value < 1.0:
      _fail(f'--operating_threshold={_OPERATING_THRESHOLD.value}: must be in (0, 1)',
            CONFIG_EXIT_CODE)
    config.eval.operating_threshold = _OPERATING_THRESHOLD.value
  if _TEMPERATURE.value is not None:
    if not _TEMPERATURE.value > 0.0:
      _fail(f'--temperature={_TEMPERATURE.value}: must be positive', CONFIG_EXIT_CODE)
    config.eval.temperature = _TEMPERATURE.value
  return config


def _refuse_other_experiment(workdir: pathlib.Path, config):
  """A workdir belongs to one experiment: training there under another config
  would mix checkpoints of both."""
  if not (workdir / 'config.json').exists() or _ALLOW_CONFIG_CHANGE.value:
    return
  before = config_lib.flatten(_stored_config(workdir).to_dict())
  now = config_lib.flatten(config.to_dict())
  changed = [f'{name} ({before[name]!r} -> {now[name]!r})' for name in sorted(now)
             if name not in LOCATION_FIELDS and before.get(name) != now[name]]
  if changed:
    _fail(f'{workdir} holds another experiment (changed: {", ".join(changed)}); use a new '
          '--workdir, or pass --allow_config_change to continue it anyway', CONFIG_EXIT_CODE)


def main(argv=None) -> dict:
  argv = sys.argv if argv is None else argv
  try:
    config_lib.check_override_names(argv)
  except config_lib.ConfigError as error:
    _fail(str(error), CONFIG_EXIT_CODE)
  try:
    flags.FLAGS(argv)
  except Exception as error:  # noqa: BLE001  (a config file may raise anything on import)
    _fail(_flag_error(error), CONFIG_EXIT_CODE)
  if _WORKDIR.value is None:
    _fail('--workdir is required', CONFIG_EXIT_CODE)
  if pathlib.Path(_WORKDIR.value).exists() and not pathlib.Path(_WORKDIR.value).is_dir():
    _fail(f'--workdir={_WORKDIR.value} is a file, not a folder', CONFIG_EXIT_CODE)
  if _MODE.value == 'predict' and not _INPUT.value:
    _fail('--mode=predict needs --input (a file or a folder)', CONFIG_EXIT_CODE)
  workdir = pathlib.Path(_WORKDIR.value)
  try:
    config = _resolve_config(workdir, _MODE.value)
    config_lib.validate(config)
  except config_lib.ConfigError as error:
    _fail(str(error), CONFIG_EXIT_CODE)
  except OSError as error:  # config_flags reports a --config file it cannot load only here
    _fail(_flag_error(error), CONFIG_EXIT_CODE)
  if _MODE.value == 'train':
    _refuse_other_experiment(workdir, config)
  logging.set_verbosity(logging.WARNING)

  # Imported here so that config errors are reported without importing JAX.
  from medjax import compilation_cache, evaluate, host_memory, parallel, predict
  from medjax.data.download import MissingDataError
  from medjax.train import loop, ridge, setup

  host_memory.reuse_freed_memory()
  compilation_cache.enable()
  if _DISTRIBUTED.value:
    parallel.initialize_distributed()
  try:
    if _MODE.value == 'predict':
      experiment = setup.build_experiment(config, predict.stored_dataset(workdir))
      written, failed = predict.predict(experiment, workdir, _INPUT.value, _OUTPUT.value,
                                        _SALIENCY.value and _SALIENCY_LIMIT.value,
                                        _CHECKPOINT.value)
      print(f'medjax: {written} prediction(s) written; {failed} input(s) could not be read',
            file=sys.stderr)
      sys.exit(1 if failed else 0)
    if _ENSEMBLE.value:
      members = [(setup.build_experiment(member_config), pathlib.Path(member))
                 for member, member_config in zip(_ENSEMBLE.value,
                                                  _ensemble_configs(_ENSEMBLE.value))]
      result = evaluate.evaluate_ensemble(members, workdir, _SPLIT.value, _CHECKPOINT.value)
      print(json.dumps(result, sort_keys=True))
      return result
    experiment = setup.build_experiment(config)
    if _MODE.value == 'train':
      files.write_text_atomic(workdir / 'config.json', config_lib.to_json(config))
      files.write_text_atomic(workdir / 'task.json', experiment.dataset.task.to_json())
      (ridge.train if config.train.solver == 'ridge' else loop.train)(experiment, workdir)
    result = evaluate.evaluate_checkpoint(experiment, workdir, _SPLIT.value,
                                          'best' if _MODE.value == 'train' else _CHECKPOINT.value)
  except loop.Preempted as preempted:
    _fail(str(preempted), PREEMPTED_EXIT_CODE)
  except config_lib.ConfigError as error:
    _fail(str(error), CONFIG_EXIT_CODE)
  except (MissingDataError, OSError, loop.NonFiniteLossError, ValueError) as error:
    _fail(' '.join(str(error).split()), 1)
  print(json.dumps(result, sort_keys=True))
  return result


if __name__ == '__main__':
  main()
