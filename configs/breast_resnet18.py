"""ResNet-18 on BreastMNIST (28 px): benign/normal vs malignant ultrasound.

The stem is MedMNIST's own: a 3x3 stride-1 convolution without pooling ('cifar'), so
the first stage sees the full 28x28 image. On this small data set (546 training images)
the 'stride2' stem of configs/pneumonia_resnet18.py, a quarter of the compute, stayed
below the paper's AUC (0.872 against 0.901 over 3 seeds; experiments/medmnist_v2.py keeps
it as the `breast/resnet18_stride2` row). 500 steps of 64 are about 59 epochs.

COMMAND: python -m medjax.experiment --config=configs/breast_resnet18.py --workdir=workdirs/breast_resnet18
"""
from configs import common


def get_config():
  config = common.use_breastmnist(common.get_config())
  config.model.name = 'resnet'
  config.model.resnet.depth = 18
  config.model.resnet.stem = 'cifar'
  config.train.steps = 500
  config.train.batch_size = 64
  config.train.eval_every = 25
  config.train.checkpoint_every = 100
  config.optim.learning_rate = 1e-3
  config.optim.warmup_steps = 25
  return config
