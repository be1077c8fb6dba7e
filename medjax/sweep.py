"""Sweep files: a base config, named variants of it, and seeds.

A sweep file is a Python file with `get_sweep()` returning a `Sweep`:

  from medjax.sweep import Sweep, Variant, product

  def get_sweep():
    return Sweep(
        base='configs/breast_cnn.py',
        variants=product({'lr1e-3': {'optim.learning_rate': 1e-3},
                          'lr3e-4': {'optim.learning_rate': 3e-4}},
                         {'plain': {}, 'smooth': {'train.label_smoothing': 0.1}}),
        seeds=(0, 1, 2),
        baseline='lr1e-3-plain')

Each (variant, seed) is one ordinary experiment run in `<workdir>/<variant>/seed<k>`.
Config file paths are relative to the working directory, as for `--config`.

A variant with `ensemble_of` trains nothing: each of its runs,
`<workdir>/<variant>/ensemble<k>`, evaluates the runs of another variant with the
seeds of its k-th group as one model (`--mode=eval --ensemble=...`), so the tables carry
seed ensembles beside single models. One group of all its members' seeds by default;
3 independent ensembles of 3 are `ensemble_seeds=((0, 1, 2), (3, 4, 5), (6, 7, 8))`, with
`seeds=tuple(range(9))` on the trained variant (a trained variant may have its own seeds;
the others keep the sweep's).
`ensemble_of` may name several variants (a tuple): an ensemble then holds each one's runs
of its seed group, e.g. unlike models trained with the same seed.
Its overrides may change only how the members are evaluated (`EVAL_OVERRIDES`): with
`{'eval.tta': 'hflip'}` and `ensemble_seeds=((0,), (1,), (2,))` it is each trained run
evaluated again with test-time views, without training anything.

A variant with `cv_folds=k` is cross-validated: its runs, `<workdir>/<variant>/fold<i>`,
are validated on fold i of a k-fold partition of the training data (`data.cv_folds`,
`data.cv_fold`; the data family must support it) and trained with seed i, so its mean
validation figure is measured on every training example once. An ensemble of such
variants (their runs of fold i together: `ensemble_seeds=((0,), ..., (k - 1,))`) is
cross-validated too. The tables choose among the rows of one validation protocol.

A variant with `refit_of=V` is V's recipe refitted once V's runs have finished: trained
on the training and validation examples together (`data.refit`), with what V's runs
chose on validation carried over: the mean of their best steps as `train.steps` (the
learning-rate schedule keeping V's length: `optim.schedule_steps`), the geometric mean
of their fitted temperatures as `eval.temperature` (a ridge head validates itself by
leave-one-out instead) and, for a binary task, the mean of their operating thresholds as
`eval.operating_threshold`. An ensemble variant of refits is a refit too, and may name
the validated ensemble it refits (`refit_of`): it is evaluated with that ensemble's
test-time views (and then at the geometric mean of the temperatures its members fitted
with them, one recipe's members only) and decides a binary task at the mean of its
chosen thresholds (its members' own were chosen for each member alone). The tables show
a refit below the row it refits, never as a candidate of the choice.
"""
import dataclasses
import importlib.util
import itertools
import json
import math
import pathlib

from medjax import config as config_lib
from configs import common


@dataclasses.dataclass(frozen=True)
class Variant:
  """One arm of the sweep: `overrides` (dotted config field -> value) applied to
  `config` (a config file; the sweep's base when empty). `baseline` names the variant
  it is compared with where that is not its data set's baseline (e.g. the one that
  differs from it in a single field)."""
  name: str
  overrides: dict = dataclasses.field(default_factory=dict)
  config: str = ''
  baseline: str = ''
  ensemble_of: str | tuple = ''  # evaluate that variant's (or those variants') runs as
                                 # ensembles; train nothing
  ensemble_seeds: tuple = ()     # the seed groups, one ensemble each; () = all its members'
  seeds: tuple = ()              # a trained variant's own seeds; () = the sweep's
  cv_folds: int = 0              # > 0: one run per fold of a cross-validation (seed = fold)
  refit_of: str = ''             # the validated variant whose recipe this one refits

  @property
  def ensembled(self) -> tuple[str, ...]:
    """The variants whose runs this one evaluates together; () for a trained variant."""
    if isinstance(self.ensemble_of, str):
      return (self.ensemble_of,) if self.ensemble_of else ()
    return tuple(self.ensemble_of)


@dataclasses.dataclass(frozen=True)
class Sweep:
  base: str
  variants: tuple
  seeds: tuple = (0,)
  # The variant every other one is compared with; one per data set where a sweep
  # spans several (a variant is compared with the baseline of its own data set).
  baseline: tuple | str = ()
  # Published figures shown beside the measured ones: {variant: {metric: value}}.
  reference: dict = dataclasses.field(default_factory=dict)
  reference_name: str = ''
  # The test metric variants are compared on, and the table's columns.
  metric: str = 'auc'
  table_metrics: tuple = ('auc', 'accuracy', 'sensitivity', 'specificity', 'ece', 'ece_floor')

  @property
  def baselines(self) -> tuple:
    return (self.baseline,) if isinstance(self.baseline, str) else tuple(self.baseline)


# The overrides an ensemble variant may carry, with the `medjax.experiment` flag of each.
EVAL_OVERRIDES = {'eval.tta': '--tta', 'eval.operating_threshold': '--operating_threshold',
                  'eval.temperature': '--temperature'}

# A run is finished once its test metrics are written (the experiment's last output).
TEST_METRICS_FILE = 'eval/test/metrics.json'


@dataclasses.dataclass(frozen=True)
class Run:
  """One run: a training run (`seed`), or an ensemble (`seed` numbers the ensemble of
  its variant; `members` are the workdirs it evaluates together)."""
  variant: Variant
  seed: int
  config_file: str
  workdir: pathlib.Path
  members: tuple = ()
  refits: tuple = ()  # a refit's: the workdirs of the validated runs it carries choices from

  @property
  def name(self) -> str:
    return f'{self.variant.name}/{self.workdir.name}'

  def command_args(self) -> list[str]:
    """The `medjax.experiment` arguments of this run."""
    if self.members:
      overrides = dict(self.variant.overrides)
      if self.refits:  # decides where the ensembles it refits decided
        validated = _finished_results(self.refits)
        overrides.update(_mean_threshold(validated))
        if overrides.get('eval.tta'):  # calibrated as they were with their views
          overrides['eval.temperature'] = _geometric_mean(
              [member['temperature'] for result in validated for member in result['ensemble']])
      return (['--mode=eval', f'--workdir={self.workdir}',
               f'--ensemble={",".join(str(member) for member in self.members)}'] +
              [f'{EVAL_OVERRIDES[field]}={_flag_value(value)}'
               for field, value in overrides.items()])
    overrides = {**self.variant.overrides, 'seed': self.seed}
    if self.variant.cv_folds:  # a training run of a cross-validated variant: one fold
      overrides.update({'data.cv_folds': self.variant.cv_folds, 'data.cv_fold': self.seed})
    if self.refits:
      overrides.update({'data.refit': True, **refit_overrides(self.refits)})
    return ([f'--config={self.config_file}', f'--workdir={self.workdir}'] +
            [f'--config.{field}={_flag_value(value)}' for field, value in overrides.items()])

  @property
  def finished(self) -> bool:
    return (self.workdir / TEST_METRICS_FILE).exists()

  @property
  def waits_for(self) -> tuple:
    """The unfinished runs it needs: an ensemble's members, a refit's validated runs."""
    return tuple(w for w in self.members + self.refits if not (w / TEST_METRICS_FILE).exists())


def refit_overrides(validated_runs) -> dict:
  """What a refit carries over from the finished runs of the recipe it refits (see the
  module docstring): a binary task's mean operating threshold, and unless the head is
  a ridge (which validates itself by leave-one-out) the mean best step and the
  geometric mean temperature."""
  summaries = _finished_results(validated_runs, 'train_summary.json')
  results = _finished_results(validated_runs)
  carried = _mean_threshold(results)
  if any(summary.get('solver') == 'ridge' for summary in summaries):
    return carried
  best_steps = [summary['best_step'] for summary in summaries]
  return {'train.steps': round(sum(best_steps) / len(best_steps)),
          'optim.schedule_steps': max(summary['steps'] for summary in summaries),
          'eval.temperature': _geometric_mean(
              [result['calibration']['temperature'] for result in results]),
          **carried}


def _geometric_mean(values) -> float:
  return math.exp(sum(math.log(value) for value in values) / len(values))


def _finished_results(validated_runs, file: str = TEST_METRICS_FILE) -> list[dict]:
  """`file` of each finished validated run (or ensemble) a refit carries choices from."""
  results = []
  for workdir in validated_runs:
    try:
      results.append(json.loads((workdir / file).read_text()))
    except (OSError, ValueError) as error:
      raise SweepError(f'a refit needs the finished runs of the recipe it refits; '
                       f'{workdir} is not one ({error})') from error
  return results


def _mean_threshold(results) -> dict:
  """A binary task's mean operating threshold of `results`, as an override."""
  thresholds = [result['operating_point']['threshold'] for result in results
                if 'threshold' in result.get('operating_point', {})]
  return {'eval.operating_threshold': sum(thresholds) / len(thresholds)} if thresholds else {}


def _flag_value(value) -> str:
  return value if isinstance(value, str) else repr(value)


def product(*axes: dict) -> tuple[Variant, ...]:
  """Every combination of the axes ({name: overrides} each); names joined by '-'."""
  variants = []
  for combination in itertools.product(*(axis.items() for axis in axes)):
    overrides = {}
    for _, axis_overrides in combination:
      overrides.update(axis_overrides)
    variants.append(Variant('-'.join(name for name, _ in combination), overrides))
  return tuple(variants)


class SweepError(ValueError):
  """A sweep file is missing, malformed or names unknown fields or variants."""


def load(path) -> Sweep:
  path = pathlib.Path(path)
  if not path.is_file():
    raise SweepError(f'sweep file {path} not found')
  spec = importlib.util.spec_from_file_location(f'medjax_sweep_{path.stem}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not hasattr(module, 'get_sweep'):
    raise SweepError(f'{path} defines no get_sweep()')
  sweep = module.get_sweep()
  check(sweep, path)
  return sweep


def check(sweep: Sweep, source) -> None:
  """Refuses duplicate or unsafe variant names, unknown fields, unknown baselines
  and missing config files before anything runs."""
  names = [variant.name for variant in sweep.variants]
  if not names:
    raise SweepError(f'{source}: the sweep has no variants')
  duplicates = sorted({name for name in names if names.count(name) > 1})
  if duplicates:
    raise SweepError(f'{source}: duplicate variant names {duplicates}')
  schema = common.get_config()
  variant_of = {variant.name: variant for variant in sweep.variants}
  for variant in sweep.variants:
    if variant.ensemble_of:
      for name in variant.ensembled:
        if name not in variant_of or variant_of[name].ensemble_of:
          raise SweepError(f'{source}: variant {variant.name!r}: ensemble_of={name!r} is not '
                           f'a trained variant')
      if len(set(variant.ensembled)) < len(variant.ensembled):
        raise SweepError(f'{source}: variant {variant.name!r}: ensemble_of='
                         f'{variant.ensemble_of!r} names a variant twice')
      if variant.seeds or variant.cv_folds:
        raise SweepError(f'{source}: variant {variant.name!r}: an ensemble variant has no seeds '
                         f'or folds of its own (its runs are ensemble_seeds groups)')
      if len({validation_of(variant_of[name], variant_of) for name in variant.ensembled}) > 1:
        raise SweepError(f'{source}: variant {variant.name!r}: its members are validated '
                         f'differently (cv_folds, refit_of), so their runs hold other '
                         f'validation examples')
      common_seeds = _members_seeds(sweep, variant, variant_of)
      if any(set(group) - set(common_seeds) or not group for group in variant.ensemble_seeds):
        raise SweepError(f'{source}: variant {variant.name!r}: ensemble_seeds '
                         f'{variant.ensemble_seeds} must be non-empty groups of the seeds '
                         f'{common_seeds} its members were trained with')
      trained_fields = sorted(set(variant.overrides) - set(EVAL_OVERRIDES))
      if trained_fields:
        raise SweepError(f'{source}: variant {variant.name!r}: an ensemble variant trains '
                         f'nothing, so it cannot override {trained_fields}; it may override '
                         f'{sorted(EVAL_OVERRIDES)}')
    _check_refit(variant, variant_of, source)
    parts = variant.name.split('/')
    if any(part in ('', '.', '..') or part.startswith(('seed', 'fold', 'ensemble'))
           for part in parts):
      raise SweepError(f'{source}: variant name {variant.name!r} cannot be a folder name')
    for field in variant.overrides:
      if field not in config_lib.flatten(schema):
        raise SweepError(f'{source}: variant {variant.name!r}: unknown config field {field!r}')
    if {'data.cv_folds', 'data.cv_fold'} & set(variant.overrides):
      raise SweepError(f'{source}: variant {variant.name!r}: cross-validate with '
                       'Variant(cv_folds=k), which sets data.cv_folds and data.cv_fold per run')
    if variant.cv_folds and (variant.cv_folds < 2 or variant.seeds):
      raise SweepError(f'{source}: variant {variant.name!r}: cv_folds={variant.cv_folds} must be '
                       'at least 2, and sets the seeds itself (seed i for fold i)')
    config_file = variant.config or sweep.base
    if not pathlib.Path(config_file).is_file():
      raise SweepError(f'{source}: variant {variant.name!r}: config file {config_file} not found')
  unknown = sorted((set(sweep.baselines) | {v.baseline for v in sweep.variants if v.baseline})
                   - set(names))
  if unknown:
    raise SweepError(f'{source}: baseline {unknown} is not a variant')
  if not sweep.seeds:
    raise SweepError(f'{source}: the sweep has no seeds')


def _check_refit(variant: Variant, variant_of: dict, source) -> None:
  """A refit names a validated variant of its kind (trained or ensemble) and adds
  nothing to its recipe; an ensemble of refits refits the ensemble of the variants its
  members refit, evaluated as that ensemble is (its test-time views)."""
  if not variant.refit_of:
    return
  refitted = variant_of.get(variant.refit_of)
  if refitted is None or refitted.refit_of or bool(refitted.ensemble_of) != bool(
      variant.ensemble_of):
    kind = 'an ensemble' if variant.ensemble_of else 'a trained'
    raise SweepError(f'{source}: variant {variant.name!r}: refit_of={variant.refit_of!r} is not '
                     f'{kind} variant validated in this sweep')
  if variant.ensemble_of:
    refits = {variant_of[name].refit_of for name in variant.ensembled}
    if refits != set(refitted.ensembled):
      raise SweepError(f'{source}: variant {variant.name!r}: its members refit '
                       f'{sorted(refits)}, not the members of {variant.refit_of!r} '
                       f'({sorted(refitted.ensembled)})')
    if refitted.overrides.get('eval.tta') and len(set(refitted.ensembled)) > 1:
      raise SweepError(f'{source}: variant {variant.name!r}: refits of several recipes '
                       'cannot be evaluated with test-time views (one temperature, fitted '
                       f'with the views of {variant.refit_of!r}, is carried to every member)')
  if variant.overrides or variant.config or variant.cv_folds:
    raise SweepError(f'{source}: variant {variant.name!r}: a refit is the recipe of '
                     f'{variant.refit_of!r}; it takes no overrides, config or folds of its own')


def seeds_of(sweep: Sweep, variant: Variant) -> tuple:
  """The seeds a trained variant runs with (a cross-validated one's: its folds)."""
  return tuple(range(variant.cv_folds)) or variant.seeds or sweep.seeds


def validation_of(variant: Variant, variant_of: dict) -> str:
  """How a variant's runs are validated: '' (the data set's validation split),
  'k-fold CV' (an ensemble variant: as its members are) or 'refit' (not validated:
  refitted on the validation data)."""
  if variant.ensemble_of:
    return validation_of(variant_of[variant.ensembled[0]], variant_of)
  if variant.refit_of:
    return 'refit'
  return f'{variant.cv_folds}-fold CV' if variant.cv_folds else ''


def _run_folder(variant: Variant, seed: int) -> str:
  return f'fold{seed}' if variant.cv_folds else f'seed{seed}'


def _members_seeds(sweep: Sweep, variant: Variant, variant_of: dict) -> tuple:
  """The seeds every variant an ensemble variant holds was trained with."""
  member_seeds = [seeds_of(sweep, variant_of[name]) for name in variant.ensembled]
  return tuple(seed for seed in member_seeds[0] if all(seed in other for other in member_seeds))


def runs(sweep: Sweep, workdir) -> list[Run]:
  """Every (variant, seed) run and every ensemble, variants in file order, seeds inner."""
  workdir = pathlib.Path(workdir)
  variant_of = {variant.name: variant for variant in sweep.variants}
  listed = []
  for variant in sweep.variants:
    if not variant.ensemble_of:
      recipe = variant_of[variant.refit_of] if variant.refit_of else variant
      refits = tuple(workdir / recipe.name / _run_folder(recipe, seed)
                     for seed in seeds_of(sweep, recipe)) if variant.refit_of else ()
      listed += [Run(dataclasses.replace(variant, overrides=recipe.overrides),
                     seed, recipe.config or sweep.base,
                     workdir / variant.name / _run_folder(variant, seed), refits=refits)
                 for seed in seeds_of(sweep, variant)]
      continue
    validated = variant_of[variant.refit_of] if variant.refit_of else variant
    refits = tuple(workdir / validated.name / f'ensemble{number}' for number in range(
        len(_seed_groups(sweep, validated, variant_of)))) if variant.refit_of else ()
    for number, group in enumerate(_seed_groups(sweep, variant, variant_of)):
      members = tuple(workdir / name / _run_folder(variant_of[name], seed)
                      for name in variant.ensembled for seed in group)
      listed.append(Run(dataclasses.replace(variant, overrides=validated.overrides), number,
                        '', workdir / variant.name / f'ensemble{number}', members, refits))
  return listed


def _seed_groups(sweep: Sweep, variant: Variant, variant_of: dict) -> tuple:
  """An ensemble variant's seed groups, one ensemble each (default: one of all seeds)."""
  return variant.ensemble_seeds or (_members_seeds(sweep, variant, variant_of),)
