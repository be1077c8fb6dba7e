import math

import jax
import jax.numpy as jnp
import pytest

from medjax import models
from medjax.data.task import InputSpec, Task
from medjax.config import ConfigError
from medjax.models.encoders.cnn import SeedCNN
from medjax.models.encoders.resnet import ResNet
from medjax.models.heads import Diagnoser
from tests.conftest import small_config


def _task(num_classes, shape):
  return Task('t', 'multiclass', tuple(map(str, range(num_classes))), (1,) * num_classes,
              {'image': InputSpec('image', shape)})


def _classifier(encoder, num_outputs):
  return Diagnoser(encoders={'image': encoder}, num_outputs=num_outputs)


def _param_count(module, shape):
  batch = {'image': jnp.zeros((1,) + shape)}
  variables = jax.eval_shape(lambda: module.init(jax.random.key(0), batch, train=False))
  return sum(math.prod(x.shape) for x in jax.tree.leaves(variables['params']))


@pytest.mark.parametrize('depth,expected', [(18, 11_689_512), (34, 21_797_672),
                                            (50, 25_557_032)])
def test_resnet_matches_torchvision_parameter_counts(depth, expected):
  # torchvision's resnet18/34/50 at 1000 classes, 3 channels, ImageNet stem.
  model = _classifier(ResNet(depth=depth, stem='imagenet'), 1000)
  assert _param_count(model, (224, 224, 3)) == expected


def test_seed_cnn_parameter_count():
  conv = lambda cin, cout: 9 * cin * cout + cout  # noqa: E731
  flat = 4 * 4 * 128  # 28 -> 14 -> 7 -> 4 with 'SAME' pooling
  expected = conv(1, 32) + conv(32, 64) + conv(64, 128) + flat * 512 + 512 + 512 * 2 + 2
  assert _param_count(_classifier(SeedCNN(), 2), (28, 28, 1)) == expected


def test_vit_parameter_count():
  config = small_config('vit').model
  width, mlp, tokens = config.vit.width, config.vit.mlp_dim, (28 // 7)**2 + 1
  block = (2 * 2 * width + 4 * (width * width + width) + width * mlp + mlp + mlp * width + width)
  expected = (49 * width + width + width + tokens * width + config.vit.depth * block +
              2 * width + width * 3 + 3)
  module = models.build(config, _task(3, (28, 28, 1)))
  assert _param_count(module, (28, 28, 1)) == expected


@pytest.mark.parametrize('name', ['cnn', 'resnet', 'vit'])
@pytest.mark.parametrize('shape', [(28, 28, 1), (28, 28, 3)])
def test_output_shape_and_dtype(name, shape):
  module = models.build(small_config(name).model, _task(5, shape))
  batch = {'image': jnp.ones((3,) + shape)}
  variables = module.init({'params': jax.random.key(0), 'dropout': jax.random.key(1)}, batch,
                          train=False)
  logits = module.apply(variables, batch, train=False)
  assert logits.shape == (3, 5) and logits.dtype == jnp.float32
  assert jnp.all(jnp.isfinite(logits))


@pytest.mark.parametrize('stem,size', [('imagenet', 28), ('cifar', 28), ('stride2', 32)])
def test_resnet_stems_and_depths(stem, size):
  for depth in (10, 18, 50):
    module = _classifier(ResNet(depth=depth, width=4, stem=stem), 2)
    batch = {'image': jnp.ones((2, size, size, 1))}
    out = jax.eval_shape(lambda m=module: m.init_with_output(
        jax.random.key(0), batch, train=False)[0])
    assert out.shape == (2, 2)


def test_bad_model_fields_are_named():
  task = _task(2, (28, 28, 1))
  config = small_config('resnet').model
  config.resnet.depth = 19
  with pytest.raises(ConfigError, match='model.resnet.depth=19'):
    models.build(config, task)
  config = small_config('vit').model
  config.vit.patch_size = 5
  with pytest.raises(ConfigError, match='patch_size=5'):
    models.build(config, task)
  config = small_config('unet').model
  with pytest.raises(ConfigError, match="model.name='unet'"):
    models.build(config, task)
  config = small_config('resnet1d').model
  with pytest.raises(ConfigError, match="'resnet1d' reads signal inputs"):
    models.build(config, task)
