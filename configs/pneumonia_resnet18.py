"""ResNet-18 on PneumoniaMNIST (28 px): normal vs pneumonia paediatric chest X-ray.

The stem is a single 3x3 stride-2 convolution without pooling ('stride2'): a
quarter of the compute of MedMNIST's CIFAR-style stem, which on a 2-core CPU
would allow only a few epochs in half an hour.

COMMAND: python -m medjax.experiment --config=configs/pneumonia_resnet18.py --workdir=workdirs/pneumonia_resnet18
"""
from configs import common


def get_config():
  config = common.get_config()
  config.data.name = 'medmnist/pneumoniamnist'
  config.data.augment.rotation_degrees = 10.0
  config.data.augment.zoom = 0.1
  config.data.augment.translate = 0.05
  config.data.augment.brightness = 0.05
  config.data.augment.contrast = 0.1
  config.model.name = 'resnet'
  config.model.resnet.depth = 18
  config.model.resnet.stem = 'stride2'
  config.train.steps = 600
  config.train.batch_size = 128
  config.train.class_weights = 'balanced'
  config.train.eval_every = 100
  config.train.checkpoint_every = 100
  config.optim.learning_rate = 1e-3
  config.optim.warmup_steps = 50
  return config
