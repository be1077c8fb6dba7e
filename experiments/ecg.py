"""The ECG study: three signal encoders x 3 seeds on ECG5000 (UCR) and on MIT-BIH
(AAMI classes, de Chazal's inter-patient split). Each data set's ResNet is the
baseline; comparisons are on test accuracy (ECG5000's published figure) and on jκ
(MIT-BIH, checkpoints chosen by validation jκ on held-out DS1 records). The MIT-BIH
ResNet without its RR features is the ablation of the tabular input; `*/linear` is
the classic baseline, logistic regression on the standardised samples (and the RR
features), trained with each data set's recipe; `ecg5000/rocket` is the classic
time-series one, random convolutional kernels and a linear classifier (ROCKET; not yet
a MIT-BIH variant) trained by Adam, `ecg5000/rocket_ridge` the same features with the
paper's ridge classifier in closed form, its kernels drawn from each run's seed. The
ECG5000 ResNet's training levers (the weights' moving average, mixup) are variants;
which recipe to keep is decided on the validation loss of each run
(train_summary.json's `best_validation`), not on this table. The `*_ensemble` rows
evaluate a variant's three seeds as one model (the balanced ridge's: three independent
ensembles of its nine seeds); `ecg5000/inception_rocket_ensemble` and
`ecg5000/resnet_inception_rocket_ensemble` several variants' runs of one seed.
The `ecg5000/*_cv` rows are the ECG5000 recipes again, cross-validated on TRAIN (five
folds of 100 series; `Variant(cv_folds=5)`): their validation loss is measured on all
500 TRAIN series where the holdout rows' is one draw of 100, and the ECG5000 recipe is
the cross-validated row of lowest validation loss (the table chooses per protocol).
The `*_refit` rows are chosen recipes trained again on all their training data
(`Variant(refit_of=...)`: the cross-validated ECG5000 recipes on all 500 TRAIN series, the
chosen MIT-BIH recipe on all 22 DS1 records), shown below the row they refit.

COMMAND: python -m medjax.ablate experiments/ecg.py --workdir=workdirs/ecg \
  --publish=experiments/results/ecg/runs
(in parts: --only='ecg5000/*', then --only='mitdb/*'; finished runs are skipped. On a new
machine, first `cp -r experiments/results/ecg/runs/. workdirs/ecg/`; published runs keep
no checkpoints, so an ensemble's members are rerun there first: delete their copies.)
"""
from medjax.sweep import Sweep, Variant

ECG5000 = 'configs/ecg5000_resnet1d.py'
MITDB = 'configs/mitdb_resnet1d.py'
# Every seed of ecg5000/rocket_ridge chose the paper's largest alpha (10^3): the same
# grid spacing carried on to 10^7.
WIDE_ALPHAS = tuple(10.0 ** (k * 2 / 3 - 3) for k in range(16))
RIDGE = 'configs/ecg5000_rocket_ridge.py'
EMA = {'train.ema': True, 'train.ema_decay': 0.99}
FOLDS = tuple((fold,) for fold in range(5))  # ensemble k: the runs of fold k
# The recipes compared by cross-validation: each encoder's, ROCKET's and the ridge
# classifiers', the ResNet's moving average (its mixup, whose holdout validation loss was
# above the ResNet's, is left out for time).
CROSS_VALIDATED = (
    ('resnet1d', {}, ECG5000),
    ('inception_time', {}, 'configs/ecg5000_inception.py'),
    ('transformer', {}, 'configs/ecg5000_transformer.py'),
    ('linear', {'model.name': 'linear'}, ECG5000),
    ('rocket_ridge', {}, RIDGE),
    ('rocket_ridge_wide', {'train.ridge_alphas': WIDE_ALPHAS}, RIDGE),
    ('rocket_ridge_balanced', {'train.ridge_alphas': WIDE_ALPHAS,
                               'train.class_weights': 'balanced'}, RIDGE),
    ('rocket', {}, 'configs/ecg5000_rocket.py'),
    ('resnet1d_ema', EMA, ECG5000),
)

REFITTED = tuple(name for name, _, _ in CROSS_VALIDATED)


def get_sweep():
  return Sweep(
      base=ECG5000,
      variants=(
          Variant('ecg5000/resnet1d'),
          Variant('ecg5000/inception_time', config='configs/ecg5000_inception.py'),
          Variant('ecg5000/transformer', config='configs/ecg5000_transformer.py'),
          Variant('ecg5000/linear', {'model.name': 'linear'}),
          Variant('ecg5000/rocket', config='configs/ecg5000_rocket.py'),
          Variant('ecg5000/rocket_ridge', config='configs/ecg5000_rocket_ridge.py'),
          Variant('ecg5000/rocket_ridge_wide', {'train.ridge_alphas': WIDE_ALPHAS},
                  config='configs/ecg5000_rocket_ridge.py'),
          # The rare beat types weighted up (n / (K n_k)) in the ridge regression.
          # Nine seeds (kernel draws), for three independent ensembles of three.
          Variant('ecg5000/rocket_ridge_balanced',
                  {'train.ridge_alphas': WIDE_ALPHAS, 'train.class_weights': 'balanced'},
                  config='configs/ecg5000_rocket_ridge.py', seeds=tuple(range(9))),
          Variant('mitdb/resnet1d', config=MITDB),
          Variant('mitdb/inception_time', config='configs/mitdb_inception.py'),
          Variant('mitdb/transformer', config='configs/mitdb_transformer.py'),
          Variant('mitdb/linear', {'model.name': 'linear'}, config=MITDB),
          Variant('mitdb/resnet1d_no_rr', {'model.inputs': 'signal'}, config=MITDB),
          # Validation jκ of mitdb/resnet1d peaked at its first evaluation (step 250) in
          # all three seeds and fell after: 500 steps, validated every 25.
          Variant('mitdb/resnet1d_short', {'train.steps': 500, 'train.eval_every': 25,
                                           'train.checkpoint_every': 250}, config=MITDB),
          Variant('ecg5000/resnet1d_ema', EMA),
          Variant('ecg5000/resnet1d_mixup', {'train.mixup_alpha': 0.2}),
          Variant('ecg5000/resnet1d_ensemble', ensemble_of='ecg5000/resnet1d'),
          Variant('ecg5000/inception_time_ensemble', ensemble_of='ecg5000/inception_time'),
          Variant('mitdb/resnet1d_ensemble', ensemble_of='mitdb/resnet1d'),
          Variant('mitdb/resnet1d_short_ensemble', ensemble_of='mitdb/resnet1d_short'),
          # Unlike models together (HIVE-COTE's lesson): the deep ensemble and the
          # random-kernel row of lowest validation loss (InceptionTime's, the balanced
          # ridge), their seed-k runs as ensemble k: three independent ensembles of two.
          Variant('ecg5000/inception_rocket_ensemble',
                  ensemble_of=('ecg5000/inception_time', 'ecg5000/rocket_ridge_balanced'),
                  ensemble_seeds=((0,), (1,), (2,))),
          # The same rule over all three families: each one's row of lowest validation
          # loss (the ResNet's baseline, InceptionTime, the balanced ridge).
          Variant('ecg5000/resnet_inception_rocket_ensemble',
                  ensemble_of=('ecg5000/resnet1d', 'ecg5000/inception_time',
                               'ecg5000/rocket_ridge_balanced'),
                  ensemble_seeds=((0,), (1,), (2,))),
          Variant('ecg5000/rocket_ridge_balanced_ensemble',
                  ensemble_of='ecg5000/rocket_ridge_balanced',
                  ensemble_seeds=((0, 1, 2), (3, 4, 5), (6, 7, 8))),
          # The recipes again, cross-validated: 5 folds of TRAIN, each validated on its
          # fold (100 series, as the holdout), so a recipe's validation figure is
          # measured on all 500 TRAIN series instead of the one holdout draw of 100.
          *(Variant(f'ecg5000/{name}_cv', overrides, config=config, cv_folds=5)
            for name, overrides, config in CROSS_VALIDATED),
          # The unlike-model ensembles by the holdout rows' rule, on the cross-validated
          # rows: each family's row of lowest validation loss (InceptionTime's of the deep
          # rows, the wide ridge's of the ridge rows), fold k's runs as ensemble k.
          Variant('ecg5000/inception_rocket_ensemble_cv',
                  ensemble_of=('ecg5000/inception_time_cv', 'ecg5000/rocket_ridge_wide_cv'),
                  ensemble_seeds=FOLDS),
          Variant('ecg5000/resnet_inception_rocket_ensemble_cv',
                  ensemble_of=('ecg5000/resnet1d_cv', 'ecg5000/inception_time_cv',
                               'ecg5000/rocket_ridge_wide_cv'),
                  ensemble_seeds=FOLDS),
          # The cross-validated recipes refitted on all 500 TRAIN series (3 seeds each), as
          # the published UCR results are trained: the deep models for their folds' mean
          # best step, at their folds' mean temperature; the ridge heads choosing their
          # alpha by leave-one-out. Then the two ensembles of the refits.
          *(Variant(f'ecg5000/{name}_refit', refit_of=f'ecg5000/{name}_cv')
            for name in REFITTED),
          Variant('ecg5000/inception_rocket_ensemble_refit',
                  ensemble_of=('ecg5000/inception_time_refit', 'ecg5000/rocket_ridge_wide_refit'),
                  ensemble_seeds=((0,), (1,), (2,)),
                  refit_of='ecg5000/inception_rocket_ensemble_cv'),
          Variant('ecg5000/resnet_inception_rocket_ensemble_refit',
                  ensemble_of=('ecg5000/resnet1d_refit', 'ecg5000/inception_time_refit',
                               'ecg5000/rocket_ridge_wide_refit'),
                  ensemble_seeds=((0,), (1,), (2,)),
                  refit_of='ecg5000/resnet_inception_rocket_ensemble_cv'),
          # The MIT-BIH recipe chosen on validation refitted on all 22 DS1 records (de
          # Chazal's training set), its three seeds as one ensemble as the chosen row's.
          Variant('mitdb/resnet1d_short_refit', refit_of='mitdb/resnet1d_short'),
          Variant('mitdb/resnet1d_short_ensemble_refit', ensemble_of='mitdb/resnet1d_short_refit',
                  refit_of='mitdb/resnet1d_short_ensemble'),
      ),
      seeds=(0, 1, 2),
      baseline=('ecg5000/resnet1d', 'mitdb/resnet1d', 'ecg5000/resnet1d_cv'),
      metric='accuracy',
      table_metrics=('accuracy', 'balanced_accuracy', 'f1_macro', 'jkappa', 'se_S', 'ppv_S',
                     'se_V', 'ppv_V'),
      reference={'ecg5000/inception_time': {'accuracy': 0.941},
                 'mitdb/resnet1d': {'accuracy': 0.819, 'jkappa': 0.612}},
      reference_name='InceptionTime (UCR) / de Chazal 2004',
  )
