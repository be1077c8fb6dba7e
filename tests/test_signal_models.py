"""Signal encoders, a model reading a signal with tabular features, absent inputs,
and signal augmentation."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from medjax import models
from medjax.data import pipeline
from medjax.data.modalities import signal
from medjax.data.task import InputSpec, Task
from medjax.models.encoders import rocket
from tests.conftest import small_config

SIGNAL = InputSpec('signal', (64, 2), sampling_rate=360.0, mean=(0.5, -0.5), std=(2.0, 1.0))
TABULAR = InputSpec('tabular', (8,), mean=(1.0,) * 8, std=(0.5,) * 8)


def _task(inputs):
  return Task('t', 'multiclass', ('N', 'S', 'V'), (5, 3, 2), inputs)


def _init_apply(module, batch):
  variables = module.init({'params': jax.random.key(0), 'dropout': jax.random.key(1)}, batch,
                          train=False)
  return variables, module.apply(variables, batch, train=False)


@pytest.mark.parametrize('name', ['resnet1d', 'inception_time', 'signal_transformer', 'rocket'])
def test_signal_encoders_give_logits(name):
  config = small_config(name).model
  module = models.build(config, _task({'signal': SIGNAL}))
  batch = {'signal': jnp.asarray(np.random.default_rng(0).normal(size=(3, 64, 2)), jnp.float32)}
  variables, logits = _init_apply(module, batch)
  # The transformer's and ROCKET's heads start at zero (every logit 0): give them weights.
  head = variables['params']['head']
  variables = {**variables, 'params': {**variables['params'],
                                       'head': {**head, 'kernel': jnp.ones_like(head['kernel'])}}}
  logits = module.apply(variables, batch, train=False)
  assert logits.shape == (3, 3) and logits.dtype == jnp.float32
  assert jnp.all(jnp.isfinite(logits))
  other = module.apply(variables, {'signal': batch['signal'] * 2 + 1}, train=False)
  assert not np.allclose(np.asarray(other), np.asarray(logits))  # it reads the signal


def test_a_model_reads_a_signal_and_tabular_features():
  config = small_config('resnet1d').model
  task = _task({'signal': SIGNAL, 'tabular': TABULAR})
  module = models.build(config, task)
  assert models.encoder_names(config, task) == {'signal': 'resnet1d', 'tabular': 'mlp'}
  rng = np.random.default_rng(0)
  batch = {'signal': jnp.asarray(rng.normal(size=(4, 64, 2)), jnp.float32),
           'tabular': jnp.asarray(rng.normal(size=(4, 8)), jnp.float32)}
  variables, logits = _init_apply(module, batch)
  assert set(variables['params']) == {'encoders_signal', 'encoders_tabular', 'head'}
  changed = module.apply(variables, {**batch, 'tabular': batch['tabular'] + 1.0}, train=False)
  assert not np.allclose(np.asarray(changed), np.asarray(logits))
  config.inputs = 'signal'
  assert models.encoder_names(config, task) == {'signal': 'resnet1d'}


def test_the_linear_baseline_is_logistic_regression_on_every_input():
  config = small_config('linear').model
  task = _task({'signal': SIGNAL, 'tabular': TABULAR})
  assert models.encoder_names(config, task) == {'signal': 'linear', 'tabular': 'linear'}
  module = models.build(config, task)
  rng = np.random.default_rng(0)
  batch = {'signal': jnp.asarray(rng.normal(size=(4, 64, 2)), jnp.float32),
           'tabular': jnp.asarray(rng.normal(size=(4, 8)), jnp.float32)}
  variables, logits = _init_apply(module, batch)
  np.testing.assert_array_equal(logits, 0.0)  # zero weights: every class equally likely
  kernel = rng.normal(size=(64 * 2 + 8, 3)).astype(np.float32)
  bias = rng.normal(size=(3,)).astype(np.float32)
  logits = module.apply({'params': {'head': {'kernel': kernel, 'bias': bias}}}, batch, train=False)
  flat = np.concatenate([np.asarray(batch['signal']).reshape(4, -1), batch['tabular']], -1)
  np.testing.assert_allclose(logits, flat @ kernel + bias, rtol=1e-5, atol=1e-5)


def test_rocket_draws_fixed_centred_kernels_that_fit_the_signal():
  kernels = rocket.draw_kernels(500, 64, 2, seed=3)
  assert sum(group['weights'].shape[-1] for group in kernels) == 500
  for group in kernels:
    size, dilation, padding = group['length'], group['dilation'], group['padding']
    assert size in rocket.LENGTHS and group['weights'].shape[:2] == (size, 2)
    assert (size - 1) * dilation <= 63  # the dilated kernel spans at most the signal
    assert padding in (0, (size - 1) * dilation // 2)
    np.testing.assert_allclose(group['weights'].mean(axis=(0, 1)), 0.0, atol=1e-6)
    assert np.all(np.abs(group['bias']) <= 1.0)
  assert {g['dilation'] for g in kernels} > {1} and {g['padding'] for g in kernels} > {0}
  again, other = rocket.draw_kernels(500, 64, 2, seed=3), rocket.draw_kernels(500, 64, 2, seed=4)
  assert all(np.array_equal(a['weights'], b['weights']) for a, b in zip(kernels, again))
  assert not np.array_equal(kernels[0]['weights'], other[0]['weights'])


def test_rocket_features_are_ppv_and_max_of_each_kernel():
  module = rocket.Rocket(kernels=30, kernel_seed=1)
  x = np.random.default_rng(0).normal(size=(3, 64, 2)).astype(np.float32)
  variables = module.init(jax.random.key(0), x, train=False)
  # Unit running statistics: the standardisation leaves the raw features.
  variables = {'batch_stats': jax.tree.map(jnp.zeros_like, variables['batch_stats'])}
  variables['batch_stats']['BatchNorm_0']['var'] += 1.0
  features = np.asarray(module.apply(variables, x, train=False))
  expected = []
  for group in rocket.draw_kernels(30, 64, 2, seed=1):
    padded = np.pad(x, ((0, 0), (group['padding'],) * 2, (0, 0)))
    span = (group['length'] - 1) * group['dilation']
    y = np.stack([np.einsum('blc,lck->bk', padded[:, t:t + span + 1:group['dilation']],
                            group['weights']) for t in range(padded.shape[1] - span)], 1)
    y = y + group['bias']
    expected += [(y > 0).mean(1), y.max(1)]
  np.testing.assert_allclose(features, np.concatenate(expected, -1), rtol=1e-3, atol=1e-3)


def test_an_absent_input_does_not_reach_the_head():
  config = small_config('resnet1d').model
  optional_tabular = InputSpec('tabular', (8,), optional=True)
  module = models.build(config, _task({'signal': SIGNAL, 'tabular': optional_tabular}))
  rng = np.random.default_rng(0)
  batch = {'signal': jnp.asarray(rng.normal(size=(2, 64, 2)), jnp.float32),
           'tabular': jnp.asarray(rng.normal(size=(2, 8)), jnp.float32),
           'tabular_present': jnp.asarray([1.0, 0.0])}
  variables, logits = _init_apply(module, batch)
  other = module.apply(variables, {**batch, 'tabular': batch['tabular'] * 5 + 3}, train=False)
  assert not np.allclose(np.asarray(other[0]), np.asarray(logits[0]))  # present: it counts
  np.testing.assert_array_equal(np.asarray(other[1]), np.asarray(logits[1]))  # absent: not


def test_the_pipeline_flags_optional_inputs_and_standardises():
  task = _task({'signal': SIGNAL, 'tabular': InputSpec('tabular', (8,), optional=True)})
  examples = {'signal': np.ones((2, 64, 2), np.float32), 'tabular': np.zeros((2, 8)),
              'tabular_present': np.array([1, 0]), 'label': np.array([0, 1]),
              'index': np.array([0, 1])}
  batch = pipeline.to_model_batch(examples, task)
  np.testing.assert_allclose(batch['signal'][0, 0], [(1 - 0.5) / 2.0, (1 + 0.5) / 1.0])
  np.testing.assert_array_equal(batch['tabular_present'], [1.0, 0.0])


def _augment_config(**values):
  fields = {'amplitude_scale': 0.2, 'noise_std': 0.1, 'time_shift': 0.1, 'baseline_wander': 0.3}
  return ml_collections.ConfigDict({**fields, **values})


def test_signal_augmentation_is_identical_per_seed_and_differs_across_seeds():
  signals = np.random.default_rng(0).normal(size=(4, 64, 2)).astype(np.float32)
  config = _augment_config()

  def augmented(seed):
    return signal.apply(signals, signal.draw(np.random.default_rng(seed), 4, config, SIGNAL))
  np.testing.assert_array_equal(augmented(1), augmented(1))
  assert not np.allclose(augmented(1), augmented(2))
  assert augmented(1).shape == signals.shape and augmented(1).dtype == np.float32


def test_signal_augmentation_parts():
  signals = np.tile(np.arange(10, dtype=np.float32)[None, :, None], (2, 1, 1))
  params = signal.draw(np.random.default_rng(0), 2, _augment_config(
      amplitude_scale=0.0, noise_std=0.0, baseline_wander=0.0, time_shift=0.0),
      InputSpec('signal', (10, 1)))
  np.testing.assert_array_equal(signal.apply(signals, params), signals)  # all off: identity
  params.update(shift=np.array([2, -3]), scale=np.array([1.0, 2.0]))
  out = signal.apply(signals, params)[..., 0]
  np.testing.assert_array_equal(out[0], [0, 0, 0, 1, 2, 3, 4, 5, 6, 7])  # edge repeated
  np.testing.assert_array_equal(out[1], 2 * np.array([3, 4, 5, 6, 7, 8, 9, 9, 9, 9]))
