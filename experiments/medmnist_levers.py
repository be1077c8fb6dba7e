"""Imaging levers on the MedMNIST v2 ResNet-18 recipes (issue: beyond the best published
MedMNIST results): each lever alone on the recipe of configs/breast_resnet18.py and
configs/pneumonia_resnet18.py, 3 seeds, and seed ensembles of the baseline and of the
moving-average runs; for BreastMNIST also stochastic depth, alone and with the moving
average, their ensembles, and CutMix. The pneumonia baseline and moving average have 9
seeds each, so that their ensemble rows are three independent ensembles of 3.
Probabilities are calibrated (temperature scaling on validation) in every row, so the
ECE column is after scaling; each run's metrics.json has it before too.

Which lever a recipe keeps is decided on the validation column (validation AUC: each
run's checkpoint metric; for a test-time-view or ensemble row, that of its mean
prediction), not on the test columns. Test-time views: flips and shifts for
breast ultrasound (trained with horizontal flips), shifts only for chest X-rays (a
flipped chest puts the heart on the wrong side).

COMMAND: python -m medjax.ablate experiments/medmnist_levers.py --workdir=workdirs/medmnist_levers \
  --publish=experiments/results/medmnist_levers/runs
(in parts: --only='breast/*', then --only='pneumonia/*', then
--only='breast/resnet18_drop_path*', then --only='breast/resnet18_cutmix', then
--only='pneumonia/*' for the 9 seeds, then --only='pneumonia/resnet18_ema*', then
--only='*_refit' for the refits of the two chosen recipes; the baselines
are rerun here, not taken from experiments/medmnist_v2.py, because an ensemble needs
its members' checkpoints, which published runs do not keep.)
"""
from medjax.sweep import Sweep, Variant

EMA = {'train.ema': True, 'train.ema_decay': 0.99}
MIXUP = {'train.mixup_alpha': 0.2}
# Stochastic depth rising to 0.1 at the last residual block (timm's rate for ResNet-18).
DROP_PATH = {'model.resnet.drop_path': 0.1}


def _levers(data: str, config: str, views: str, seeds: tuple = (),
            groups: tuple = ()) -> tuple:
  """The levers on one data set's recipe; `seeds` of the baseline and the moving average
  (() = the sweep's) and the seed `groups` of their ensembles (() = one of all seeds)."""
  return (
      Variant(f'{data}/resnet18', config=config, seeds=seeds),
      Variant(f'{data}/resnet18_ema', EMA, config=config, seeds=seeds),
      Variant(f'{data}/resnet18_mixup', MIXUP, config=config),
      # The baseline's runs evaluated again with test-time views (nothing retrained).
      Variant(f'{data}/resnet18_tta', {'eval.tta': views}, ensemble_of=f'{data}/resnet18',
              ensemble_seeds=((0,), (1,), (2,))),
      Variant(f'{data}/resnet18_ensemble', ensemble_of=f'{data}/resnet18',
              ensemble_seeds=groups),
      Variant(f'{data}/resnet18_ensemble_tta', {'eval.tta': views},
              ensemble_of=f'{data}/resnet18', ensemble_seeds=groups),
      Variant(f'{data}/resnet18_ema_ensemble', ensemble_of=f'{data}/resnet18_ema',
              ensemble_seeds=groups),
  )


# Stochastic depth on the small breast set only, where a regulariser has the most to give
# (546 training images; PneumoniaMNIST's validation AUC is saturated at 0.997-0.999).
BREAST_DROP_PATH = (
    Variant('breast/resnet18_drop_path', DROP_PATH, config='configs/breast_resnet18.py'),
    Variant('breast/resnet18_drop_path_ensemble', ensemble_of='breast/resnet18_drop_path'),
    # The two levers of the best single-model validation AUC, together.
    Variant('breast/resnet18_drop_path_ema', {**DROP_PATH, **EMA},
            config='configs/breast_resnet18.py'),
    Variant('breast/resnet18_drop_path_ema_ensemble', ensemble_of='breast/resnet18_drop_path_ema'),
    # CutMix at its paper's Beta(1, 1) (Yun et al. 2019), the other mixing lever beside mixup.
    Variant('breast/resnet18_cutmix', {'train.cutmix_alpha': 1.0},
            config='configs/breast_resnet18.py'),
)

# The recipe each data set chose on validation, refitted on its training and validation
# images together (3 seeds; what the validated runs chose carried over), as the ECG5000
# recipe is: the breast stochastic-depth ensemble and the pneumonia baseline with
# test-time shifts, each seed its own view ensemble as in the validated row.
REFITS = (
    Variant('breast/resnet18_drop_path_refit', refit_of='breast/resnet18_drop_path'),
    Variant('breast/resnet18_drop_path_ensemble_refit',
            ensemble_of='breast/resnet18_drop_path_refit',
            refit_of='breast/resnet18_drop_path_ensemble'),
    Variant('pneumonia/resnet18_refit', refit_of='pneumonia/resnet18'),
    Variant('pneumonia/resnet18_tta_refit', ensemble_of='pneumonia/resnet18_refit',
            ensemble_seeds=((0,), (1,), (2,)), refit_of='pneumonia/resnet18_tta'),
)


def get_sweep():
  return Sweep(
      base='configs/breast_resnet18.py',
      variants=(_levers('breast', 'configs/breast_resnet18.py', 'hflip,shift') +
                BREAST_DROP_PATH +
                _levers('pneumonia', 'configs/pneumonia_resnet18.py', 'shift',
                        seeds=tuple(range(9)), groups=((0, 1, 2), (3, 4, 5), (6, 7, 8))) +
                REFITS),
      seeds=(0, 1, 2),
      baseline=('breast/resnet18', 'pneumonia/resnet18'),
      reference={'breast/resnet18': {'auc': 0.919, 'accuracy': 0.861},
                 'pneumonia/resnet18': {'auc': 0.991, 'accuracy': 0.946}},
      reference_name='Google AutoML Vision (MedMNIST v2, 28 px)',
      table_metrics=('auc', 'accuracy', 'sensitivity', 'specificity', 'ece', 'ece_floor',
                     'brier'),
  )
