"""Shared defaults: every experiment config starts from `get_config()` here.

The core sections are here; each data family, modality and encoder contributes its
own fields (`CONFIG` in its module, added by `medjax.registry`). Together they are
the public schema: a config or a `--config.x=...` override naming a field that is
not in it, or giving it a value of the wrong type, is refused before anything runs
(`medjax.config.validate`).
"""
import os

import ml_collections


def default_data_dir() -> str:
  return os.environ.get('MEDJAX_DATA_DIR') or os.path.expanduser('~/.medjax/data')


def default_prepared_dir() -> str:
  return os.environ.get('MEDJAX_PREPARED_DIR') or os.path.expanduser('~/.medjax/prepared')


def get_config():
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.name = 'medmnist/breastmnist'  # <family>/<data set>
  config.data.data_dir = default_data_dir()   # raw files, looked up before downloading
  config.data.prepared_dir = default_prepared_dir()  # TFDS ArrayRecord files, prepared once
  config.data.eval_batch_size = 256
  config.data.prefetch_batches = 8            # training batches prepared ahead (>= 1)
  config.data.in_memory_mib = 2048.0          # splits up to this size are decoded into memory once
  config.data.augment = ml_collections.ConfigDict()  # fields: one set per modality
  # Validation by k-fold cross-validation of the training data (families that support
  # it: `CROSS_VALIDATES` in their module): fold `cv_fold` of `cv_folds` is the
  # validation split. 0 folds = the family's own validation split.
  config.data.cv_folds = 0
  config.data.cv_fold = 0
  # Train on the training and validation data together, with no validation split: the
  # last step is kept, and what validation would fit is given (optim.schedule_steps,
  # eval.temperature, eval.operating_threshold; a ridge head validates by leave-one-out).
  # For a recipe already chosen on validation, as the sweeps' `Variant(refit_of=...)`.
  config.data.refit = False

  config.model = ml_collections.ConfigDict()
  config.model.name = 'cnn'                   # the encoder (medjax/models/encoders/)
  config.model.inputs = ''                    # input keys the model reads; '' = all of the task's
  config.model.dtype = 'float32'             # compute dtype; parameters and optimiser stay float32
  config.model.remat = False                  # recompute block activations in the backward pass
  config.model.conv_impl = 'auto'             # auto (matmul on CPU, lax elsewhere) | matmul | lax

  config.train = ml_collections.ConfigDict()
  config.train.steps = 1000
  config.train.batch_size = 128
  config.train.label_smoothing = 0.0
  config.train.class_weights = 'none'         # none | balanced (inverse class frequency)
  config.train.log_every = 50
  config.train.eval_every = 200               # validation (and best-checkpoint) interval
  config.train.checkpoint_every = 200
  config.train.checkpoints_to_keep = 2
  config.train.progress_bar = True
  config.train.microbatches = 1               # gradient accumulation over this many micro-batches
  config.train.nonfinite = 'stop'             # NaN/Inf loss or gradient: stop | skip (the update)
  config.train.select_metric = ''             # validation metric of the best checkpoint; '' = by task
  config.train.ema = False                    # evaluate and checkpoint a moving average of the weights
  config.train.ema_decay = 0.999              # its decay per step (lower early on: train/step.py)
  config.train.mixup_alpha = 0.0              # mixup's Beta(α, α); 0 = off (medjax/train/mixing.py)
  config.train.cutmix_alpha = 0.0             # CutMix's Beta(α, α); 0 = off
  config.train.solver = 'gradient'            # gradient (the loop) | ridge (the head in closed form)
  # ridge: the strengths tried, the best on validation kept (medjax/train/ridge.py)
  config.train.ridge_alphas = tuple(10.0 ** (k * 2 / 3 - 3) for k in range(10))

  config.optim = ml_collections.ConfigDict()
  config.optim.name = 'adam'                  # adam | adamw | sgd (with momentum)
  config.optim.learning_rate = 1e-3
  config.optim.warmup_steps = 0
  config.optim.schedule = 'cosine'            # cosine | constant (after warm-up)
  config.optim.schedule_steps = 0             # the schedule's length (>= train.steps); 0 = train.steps
  config.optim.weight_decay = 0.0
  config.optim.momentum = 0.9
  config.optim.grad_clip_norm = 0.0           # 0 disables clipping

  config.eval = ml_collections.ConfigDict()
  config.eval.positive_class = ''             # binary: label name scored as positive; '' = label 1
  config.eval.operating_rule = 'youden'       # youden | sensitivity | specificity (chosen on val)
  config.eval.operating_target = 0.0          # the target sensitivity or specificity
  config.eval.operating_threshold = 0.0       # > 0: this binary threshold, not one chosen on val
  config.eval.bootstrap_resamples = 1000      # stratified bootstrap for the 95% intervals
  config.eval.bootstrap_seed = 0
  config.eval.confidence = 0.95
  config.eval.plots = True                    # ROC, PR, reliability, confusion matrix PNGs
  config.eval.calibrate = True                # temperature scaling fitted on val (medjax/calibration.py)
  config.eval.temperature = 0.0               # > 0: this temperature, not one fitted on val
  config.eval.tta = ''                        # test-time views averaged: hflip,vflip,shift (medjax/tta.py)

  config.explain = ml_collections.ConfigDict()
  config.explain.num_images = 8               # saliency overlays per evaluated split; 0: none
  config.explain.methods = 'gradients,smoothgrad,integrated_gradients,grad_cam'
  config.explain.layer = ''                   # Grad-CAM tap; '' = the model's default
  config.explain.smoothgrad_samples = 16
  config.explain.smoothgrad_noise = 0.15
  config.explain.ig_steps = 32

  config.mesh = ml_collections.ConfigDict()
  config.mesh.data = -1                       # devices on the data axis; -1: all fsdp leaves
  config.mesh.fsdp = 1                        # devices the train state is sharded over
  config.mesh.fsdp_min_size = 2**14           # smaller arrays stay replicated

  config.compile = ml_collections.ConfigDict()
  config.compile.cache_dir = ''               # JAX's persistent compilation cache; '' = off

  # Each data family, modality and encoder adds its own fields (its CONFIG fragment).
  from medjax import registry
  registry.add_fragments(config)
  return config


def use_breastmnist(config):
  """BreastMNIST at 28 px, malignant as the positive class, ultrasound augmentation."""
  config.data.name = 'medmnist/breastmnist'
  config.eval.positive_class = 'malignant'
  config.data.augment.update(rotation_degrees=10.0, zoom=0.1, translate=0.05,
                             horizontal_flip=True)
  return config
