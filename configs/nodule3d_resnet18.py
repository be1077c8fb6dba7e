"""A 3-D ResNet-18 on NoduleMNIST3D (28^3 chest-CT crops of lung nodules, LIDC-IDRI):
benign vs malignant, with malignant as the positive class.

3x3x3 convolutions throughout, the 'stride2' stem (a 14^3 first stage: the 'cifar'
stem's 28^3 is 8x the compute), flips along every axis and whole-voxel shifts. This
recipe has not been tuned or measured: no 3-D data set was on the machine medjax was
built on (the 3-D code is tested on generated volumes).

COMMAND: python -m medjax.experiment --config=configs/nodule3d_resnet18.py --workdir=workdirs/nodule3d
"""
from configs import common


def get_config():
  config = common.get_config()
  config.data.name = 'medmnist3d/nodulemnist3d'
  config.data.image_size = 28
  config.data.augment.update(horizontal_flip=True, vertical_flip=True, depth_flip=True,
                             translate=0.1)
  config.eval.positive_class = 'malignant'
  config.model.name = 'resnet'
  config.model.resnet.depth = 18
  config.model.resnet.stem = 'stride2'
  config.train.steps = 2000
  config.train.batch_size = 32
  config.train.eval_every = 100
  config.train.checkpoint_every = 200
  config.optim.learning_rate = 1e-3
  config.optim.warmup_steps = 100
  config.explain.num_images = 4
  return config
