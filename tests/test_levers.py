"""Training levers: the weights' moving average (EMA), mixup and CutMix, stochastic depth."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from medjax import config as config_lib
from medjax import checkpoint, models, parallel
from medjax.config import ConfigError
from medjax.data import Dataset, pipeline
from medjax.data.task import InputSpec, Task
from medjax.models.layers import DropPath, drop_path_rates
from medjax.train import mixing, setup
from medjax.train import step as steps
from tests.conftest import small_config


def _steps(config, dataset, num_steps):
  """The experiment and its states after 0..num_steps steps on the first training batch."""
  experiment = setup.build_experiment(config, dataset)
  batch = next(iter(pipeline.train_batches(dataset.sources['train'], dataset.task, config.data,
                                           global_batch_size=config.train.batch_size, seed=0)))
  batch = parallel.to_global(setup.device_batch(batch), experiment.mesh)
  states = [jax.device_get(experiment.state)]
  state = experiment.state
  for _ in range(num_steps):
    state, _ = experiment.train_step(state, batch, jax.random.key(3))
    states.append(jax.device_get(state))
  return experiment, state, states


def _ema_config(decay):
  config = small_config('resnet')  # BatchNorm: the average covers its statistics too
  config.train.ema, config.train.ema_decay = True, decay
  return config


def test_ema_with_decay_zero_equals_the_raw_weights(breast):
  _, _, states = _steps(_ema_config(0.0), breast, 2)
  last = states[-1]
  jax.tree.map(np.testing.assert_array_equal, last.ema,
               {'params': last.params, 'batch_stats': last.batch_stats})


def test_ema_follows_its_recurrence_and_is_what_evaluation_reads(breast):
  decay = 0.5
  experiment, state, states = _steps(_ema_config(decay), breast, 3)
  expected = states[0].ema
  for step, after in enumerate(states[1:]):
    rate = min(decay, (1 + step) / (10 + step))
    current = {'params': after.params, 'batch_stats': after.batch_stats}
    expected = jax.tree.map(lambda e, p: rate * e + (1 - rate) * p, expected, current)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
               states[-1].ema, expected)
  assert not np.allclose(states[-1].ema['params']['head']['kernel'],
                         states[-1].params['head']['kernel'])
  # Evaluation reads the average, not the raw weights.
  batch = next(iter(pipeline.eval_batches(breast.sources['val'], breast.task, batch_size=64)))
  global_batch = parallel.to_global(setup.device_batch(batch), experiment.mesh)
  logits = np.asarray(experiment.eval_step(state, global_batch)['logits'])
  averaged = state.apply_fn(states[-1].ema, batch, train=False)
  np.testing.assert_allclose(logits, averaged, rtol=1e-4, atol=1e-5)
  raw = state.apply_fn(steps.model_variables(state, state.params), batch, train=False)
  assert not np.allclose(logits, raw, atol=1e-4)


def test_ema_survives_a_checkpoint(breast, tmp_path):
  experiment, state, _ = _steps(_ema_config(0.9), breast, 2)
  saved = checkpoint.Checkpoints(tmp_path / 'checkpoints')
  saved.save(2, state, {})
  saved.wait()
  restored, _ = saved.restore(2, checkpoint.abstract_like(experiment.state,
                                                          experiment.state_sharding))
  saved.close()
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(restored.ema),
               jax.device_get(state.ema))


def _image_task():
  return Task('pictures', 'binary', ('a', 'b'), (4, 4),
              {'image': InputSpec('image', (6, 8, 1))})


def _images(count=4):
  values = np.random.default_rng(0).normal(size=(count, 6, 8, 1)).astype(np.float32)
  return {'image': jnp.asarray(values), 'label': jnp.arange(count) % 2,
          'mask': jnp.ones(count)}


def test_mixup_with_alpha_zero_is_the_identity():
  batch = _images()
  mixed, partner_labels, lam = mixing.mix(batch, jax.random.key(0), _image_task(),
                                          mixup_alpha=0.0, cutmix_alpha=0.0)
  assert float(lam) == 1.0
  np.testing.assert_array_equal(mixed['image'], batch['image'])
  np.testing.assert_array_equal(partner_labels, batch['label'][::-1])


def test_mixup_blends_each_example_with_its_mirror():
  batch = _images()
  mixed, _, lam = mixing.mix(batch, jax.random.key(0), _image_task(), mixup_alpha=0.4,
                             cutmix_alpha=0.0)
  assert 0.0 < float(lam) < 1.0
  np.testing.assert_allclose(mixed['image'],
                             lam * batch['image'] + (1 - lam) * batch['image'][::-1], rtol=1e-6)
  again, _, lam_again = mixing.mix(batch, jax.random.key(0), _image_task(), mixup_alpha=0.4,
                                   cutmix_alpha=0.0)
  np.testing.assert_array_equal(again['image'], mixed['image'])
  _, _, other = mixing.mix(batch, jax.random.key(1), _image_task(), mixup_alpha=0.4,
                           cutmix_alpha=0.0)
  assert float(other) != float(lam_again)


def test_cutmix_pastes_one_box_and_its_share_is_the_label_weight():
  batch = _images()
  mixed, _, lam = mixing.mix(batch, jax.random.key(2), _image_task(), mixup_alpha=0.0,
                             cutmix_alpha=1.0)
  image, partner = np.asarray(batch['image']), np.asarray(batch['image'][::-1])
  from_partner = np.isclose(np.asarray(mixed['image']), partner) & ~np.isclose(image, partner)
  assert np.all(np.isclose(np.asarray(mixed['image']), image) | from_partner)
  box = from_partner[0, :, :, 0]
  rows, cols = np.flatnonzero(box.any(1)), np.flatnonzero(box.any(0))
  assert box.sum() == len(rows) * len(cols)  # a rectangle, the same in every example
  np.testing.assert_array_equal(from_partner[1:, :, :, 0], np.broadcast_to(box, (3, 6, 8)))
  np.testing.assert_allclose(float(lam), 1 - box.mean(), rtol=1e-6)


def test_cutmix_cuts_signals_in_time_and_blends_tabular_inputs():
  task = Task('beats', 'multiclass', ('a', 'b', 'c'), (3, 3, 3),
              {'signal': InputSpec('signal', (40, 2), sampling_rate=100),
               'rr': InputSpec('tabular', (3,), feature_names=('x', 'y', 'z'))})
  rng = np.random.default_rng(1)
  batch = {'signal': jnp.asarray(rng.normal(size=(6, 40, 2)), jnp.float32),
           'rr': jnp.asarray(rng.normal(size=(6, 3)), jnp.float32),
           'label': jnp.arange(6) % 3, 'mask': jnp.ones(6)}
  mixed, _, lam = mixing.mix(batch, jax.random.key(5), task, mixup_alpha=0.0, cutmix_alpha=1.0)
  swapped = ~np.isclose(np.asarray(mixed['signal']), np.asarray(batch['signal']))
  steps_cut = np.flatnonzero(swapped[0].any(-1))
  assert steps_cut.size and np.array_equal(steps_cut, np.arange(steps_cut[0], steps_cut[-1] + 1))
  np.testing.assert_allclose(float(lam), 1 - steps_cut.size / 40, rtol=1e-6)
  np.testing.assert_allclose(mixed['rr'], lam * batch['rr'] + (1 - lam) * batch['rr'][::-1],
                             rtol=1e-5)


def test_a_mixed_step_trains_on_both_labels(breast):
  config = small_config('cnn')
  config.model.cnn.dropout = 0.0
  config.train.mixup_alpha = 0.4
  experiment = setup.build_experiment(config, breast)
  batch = next(iter(pipeline.train_batches(breast.sources['train'], breast.task, config.data,
                                           global_batch_size=config.train.batch_size, seed=0)))
  params = jax.device_get(experiment.state.params)  # the step donates the state
  rng = jax.random.key(3)
  _, metrics = experiment.train_step(
      experiment.state, parallel.to_global(setup.device_batch(batch), experiment.mesh), rng)
  # The loss is λ CE(label) + (1 - λ) CE(partner's label) on the mixed inputs, drawn
  # from the step's own key.
  mixed, partner_labels, lam = mixing.mix(
      jax.tree.map(jnp.asarray, batch),
      jax.random.fold_in(jax.random.fold_in(rng, mixing.RNG_STREAM), 0), breast.task,
      mixup_alpha=0.4, cutmix_alpha=0.0)
  logits = experiment.state.apply_fn({'params': params}, mixed, train=True)
  expected = (lam * steps.per_example_loss(logits, batch['label'], breast.task).mean() +
              (1 - lam) * steps.per_example_loss(logits, partner_labels, breast.task).mean())
  assert 0.0 < float(lam) < 1.0
  np.testing.assert_allclose(float(metrics['loss']), float(expected), rtol=1e-5)


def test_drop_path_drops_whole_examples_in_training_only():
  x = jnp.ones((2000, 3))
  layer = DropPath(0.25)
  dropped = layer.apply({}, x, deterministic=False, rngs={'dropout': jax.random.key(0)})
  rows = np.asarray(dropped)
  assert set(np.unique(rows)) == {0.0, np.float32(1 / 0.75)}
  assert np.all(rows == rows[:, :1])  # a whole example at a time
  assert abs((rows[:, 0] == 0).mean() - 0.25) < 0.03
  np.testing.assert_array_equal(layer.apply({}, x, deterministic=True), x)
  assert drop_path_rates(0.2, 5) == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2])


@pytest.mark.parametrize('encoder', ['resnet', 'resnet1d'])
def test_stochastic_depth_keeps_the_parameters_and_evaluation(encoder):
  key = 'image' if encoder == 'resnet' else 'signal'
  spec = InputSpec('image', (16, 16, 1)) if key == 'image' else InputSpec('signal', (32, 1))
  task = Task('t', 'binary', ('a', 'b'), (1, 1), {key: spec})
  inputs = {key: jax.random.normal(jax.random.key(0), (4,) + spec.shape)}
  outputs = {}
  for rate in (0.0, 0.5):
    config = small_config(encoder)
    config.model[encoder].drop_path = rate
    model = models.build(config.model, task)
    variables = model.init(jax.random.key(0), inputs, train=False)
    # Away from the initialisation, where a ResNet block's last BatchNorm scale is 0.
    variables = {**variables, 'params': jax.tree.map(lambda p: p + 0.5, variables['params'])}
    outputs[rate] = (variables, model.apply(variables, inputs, train=False),
                     model.apply(variables, inputs, train=True, mutable=['batch_stats'],
                                 rngs={'dropout': jax.random.key(1)})[0])
  (plain_vars, plain_eval, plain_train), (dropped_vars, dropped_eval, dropped_train) = (
      outputs[0.0], outputs[0.5])
  assert jax.tree.structure(plain_vars) == jax.tree.structure(dropped_vars)
  np.testing.assert_allclose(dropped_eval, plain_eval, rtol=1e-6)
  assert not np.allclose(dropped_train, plain_train)


def test_lever_config_errors():
  for field, value, message in (('train.ema_decay', 1.0, 'train.ema_decay=1.0 must be in'),
                                ('train.mixup_alpha', -0.2, 'train.mixup_alpha=-0.2 must be'),
                                ('model.resnet.drop_path', 1.0, 'model.resnet.drop_path=1.0')):
    config = small_config('resnet')
    config.update_from_flattened_dict({field: value})
    with pytest.raises(ConfigError, match=message):
      config_lib.validate(config)
  config = small_config('mlp')
  config.train.cutmix_alpha = 1.0
  task = Task('table', 'binary', ('a', 'b'), (1, 1),
              {'rr': InputSpec('tabular', (2,), feature_names=('x', 'y'))})
  with pytest.raises(ConfigError, match='train.cutmix_alpha needs an image or signal input'):
    setup.build_experiment(config, Dataset(task=task, sources={}))
