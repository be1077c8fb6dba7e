import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from medjax import models, parallel
from medjax.data import Dataset, pipeline
from medjax.data.task import InputSpec, Task
from medjax.train import loop, setup
from medjax.train import step as steps
from medjax.train.state import TrainState
from tests.conftest import small_config


def _first_batch(breast, config):
  batches = pipeline.train_batches(breast.sources['train'], breast.task, config.data,
                                   global_batch_size=config.train.batch_size, seed=0)
  return next(iter(batches))


def _train_steps(config, batch, num_steps=1):
  """(params, losses, experiment) after `num_steps` steps on `batch`."""
  experiment = setup.build_experiment(config)
  global_batch = parallel.to_global(setup.device_batch(batch), experiment.mesh)
  state, losses = experiment.state, []
  for _ in range(num_steps):
    state, metrics = experiment.train_step(state, global_batch, jax.random.key(7))
    losses.append(float(metrics['loss']))
  return jax.device_get(state.params), losses, experiment


def _assert_close(tree_a, tree_b, atol=1e-5):
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=atol, rtol=0), tree_a, tree_b)


@pytest.mark.parametrize('model', ['cnn', 'resnet', 'vit'])
def test_data_parallel_and_fsdp_steps_match_one_device(breast, model):
  config = small_config(model)
  config.model.cnn.dropout = 0.0  # dropout masks depend on the sharding of the rng
  config.mesh.fsdp_min_size = 256  # small enough that the tiny models' kernels are split
  # SGD: Adam's first steps divide near-zero gradients by their own size, which turns
  # float summation-order noise (1e-7) into visible parameter differences.
  config.optim.update(name='sgd', learning_rate=0.05)
  batch = _first_batch(breast, config)
  config.mesh.update(data=1, fsdp=1)
  params_1, losses_1, _ = _train_steps(config, batch, num_steps=3)
  for data, fsdp in ((8, 1), (2, 4)):
    config.mesh.update(data=data, fsdp=fsdp)
    params_8, losses_8, experiment = _train_steps(config, batch, num_steps=3)
    np.testing.assert_allclose(losses_8, losses_1, atol=1e-5)
    _assert_close(params_1, params_8)
  # The FSDP run really sharded the state: some kernel is split over the fsdp axis.
  specs = [s.spec for s in jax.tree.leaves(experiment.state_sharding.params)]
  assert any(parallel.FSDP_AXIS in spec for spec in specs)


def test_sharding_rule_splits_large_arrays_on_their_largest_divisible_axis():
  assert parallel.array_spec((3, 3, 64, 128), 4, 1024) == jax.sharding.PartitionSpec(
      None, None, None, 'fsdp')
  assert parallel.array_spec((1000, 96), 4, 1024) == jax.sharding.PartitionSpec('fsdp')
  assert parallel.array_spec((999, 96), 4, 1024) == jax.sharding.PartitionSpec(None, 'fsdp')
  assert parallel.array_spec((7, 9), 4, 1) == jax.sharding.PartitionSpec()  # nothing divides
  assert parallel.array_spec((64,), 4, 1024) == jax.sharding.PartitionSpec()  # small
  assert parallel.array_spec((4096, 64), 1, 1) == jax.sharding.PartitionSpec()  # no fsdp axis


def test_optimiser_state_is_sharded_like_the_parameters(breast):
  config = small_config('resnet')
  config.mesh.update(data=2, fsdp=4, fsdp_min_size=256)
  experiment = setup.build_experiment(config)
  mu = experiment.state.opt_state[0].mu
  jax.tree.map(lambda p, m: np.testing.assert_equal(p.sharding.spec, m.sharding.spec),
               experiment.state.params, mu)
  kernel = experiment.state.params['encoders_image']['BasicBlock_0']['Conv_0']['kernel']  # (3, 3, 8, 8)
  assert kernel.sharding.spec == jax.sharding.PartitionSpec(None, None, 'fsdp')


def test_mesh_sizes_are_checked():
  config = small_config()
  config.mesh.update(data=4, fsdp=4)
  with pytest.raises(ValueError, match='mesh.data=4 x mesh.fsdp=4 needs more than the 8'):
    parallel.make_mesh(config.mesh)
  config.mesh.update(data=-1, fsdp=3)
  with pytest.raises(ValueError, match='mesh.fsdp=3 must divide the 8 devices'):
    parallel.make_mesh(config.mesh)


def test_gradient_accumulation_matches_the_full_batch(breast):
  config = small_config('cnn')
  config.model.cnn.dropout = 0.0
  config.train.batch_size = 32
  # SGD, as above: Adam's first steps magnify summation-order noise past the tolerance.
  config.optim.update(name='sgd', learning_rate=0.05)
  batch = _first_batch(breast, config)
  params_full, losses_full, _ = _train_steps(config, batch)
  config.train.microbatches = 4
  params_micro, losses_micro, _ = _train_steps(config, batch)
  np.testing.assert_allclose(losses_micro, losses_full, rtol=1e-5)
  _assert_close(params_full, params_micro)
  config.train.microbatches = 3
  with pytest.raises(ValueError, match='train.microbatches=3'):
    setup.build_experiment(config)


def test_remat_changes_memory_not_numbers(breast):
  config = small_config('vit')
  config.mesh.data = 1
  batch = _first_batch(breast, config)
  params, losses, _ = _train_steps(config, batch, num_steps=2)
  config.model.remat = True
  params_remat, losses_remat, _ = _train_steps(config, batch, num_steps=2)
  np.testing.assert_allclose(losses_remat, losses, rtol=1e-6)
  _assert_close(params, params_remat, atol=1e-6)
  # Checkpoints stay interchangeable: the same parameter names with and without remat.
  config = small_config('resnet')
  shapes = []
  for remat in (False, True):
    config.model.remat = remat
    model = models.build(config.model, breast.task)
    image = jnp.zeros((1, 28, 28, 1))
    shapes.append(jax.eval_shape(lambda: model.init(jax.random.key(0), {'image': image},
                                                    train=False)))
  assert jax.tree.structure(shapes[0]) == jax.tree.structure(shapes[1])


def test_bfloat16_computes_in_bfloat16_and_keeps_float32_state(breast):
  config = small_config('cnn')
  config.model.cnn.dropout = 0.0
  config.mesh.data = 1
  batch = _first_batch(breast, config)
  _, losses_32, _ = _train_steps(config, batch)
  config.model.dtype = 'bfloat16'
  params, losses_16, experiment = _train_steps(config, batch)
  state = experiment.state
  assert {x.dtype for x in jax.tree.leaves(params)} == {np.dtype('float32')}
  assert {x.dtype for x in jax.tree.leaves(state.opt_state) if x.ndim} == {np.dtype('float32')}
  hlo = jax.jit(lambda v, b: state.apply_fn(v, b, train=False)).lower(
      steps.model_variables(state), {'image': jnp.asarray(batch['image'])}).as_text()
  assert 'bf16' in hlo
  assert losses_16[0] == pytest.approx(losses_32[0], abs=0.05) and losses_16 != losses_32


def test_loss_falls_on_a_small_real_subset(breast):
  config = small_config('cnn')
  config.train.batch_size = 64
  config.model.cnn.dropout = 0.0
  config.optim.schedule = 'constant'
  config.mesh.data = 1
  batch = next(pipeline.eval_batches(breast.sources['train'], breast.task, batch_size=64))
  _, losses, _ = _train_steps(config, batch, num_steps=40)
  assert losses[-1] < 0.5 * losses[0]
  assert all(np.isfinite(losses))


def test_balanced_class_weights_follow_the_class_counts(breast):
  weights = steps.class_weights(breast.task, 'balanced')
  counts = np.asarray(breast.task.class_counts)
  np.testing.assert_allclose(weights * counts, counts.sum() / 2, rtol=1e-6)
  np.testing.assert_array_equal(steps.class_weights(breast.task, 'none'), [1, 1])
  with pytest.raises(ValueError, match="train.class_weights='inverse'"):
    steps.class_weights(breast.task, 'inverse')


def test_nan_loss_stops_training_naming_the_step_and_keeping_the_last_checkpoint(tmp_path):
  config = small_config('cnn')
  config.optim.update(learning_rate=1e30, schedule='constant')  # step 1 blows the weights up
  config.train.update(log_every=1, checkpoint_every=1, eval_every=100)
  config.mesh.data = 1
  with pytest.raises(loop.NonFiniteLossError) as error:
    loop.train(setup.build_experiment(config), tmp_path)
  message = str(error.value)
  assert 'at step 2;' in message and 'the last good checkpoint (step 1) is kept' in message
  assert sorted(p.name for p in (tmp_path / 'checkpoints').iterdir()) == ['1']


def test_skip_mode_drops_non_finite_updates(breast):
  config = small_config('cnn')
  config.train.nonfinite = 'skip'
  config.mesh.data = 1
  batch = _first_batch(breast, config)
  experiment = setup.build_experiment(config)
  poisoned = {**setup.device_batch(batch), 'image': np.full_like(batch['image'], np.nan)}
  before = jax.device_get(experiment.state.params)
  state, metrics = experiment.train_step(experiment.state, poisoned, jax.random.key(0))
  assert float(metrics['finite']) == 0 and int(state.step) == 1
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(state.params), before)
  state, metrics = experiment.train_step(state, setup.device_batch(batch), jax.random.key(0))
  assert float(metrics['finite']) == 1
  assert not np.array_equal(jax.device_get(state.params)['head']['bias'],
                            before['head']['bias'])


def test_build_experiment_on_a_given_dataset():
  # The benchmarks time the real step on synthetic images of any size this way.
  task = Task('synthetic', 'multiclass', ('a', 'b', 'c'), (4, 4, 4),
              {'image': InputSpec('image', (16, 16, 3))})
  dataset = Dataset(task=task, sources={})
  experiment = setup.build_experiment(small_config('cnn'), dataset)
  assert experiment.dataset is dataset
  rng = np.random.default_rng(0)
  batch = {'image': rng.uniform(-1, 1, (8, 16, 16, 3)).astype(np.float32),
           'label': np.arange(8, dtype=np.int32) % 3, 'index': np.arange(8, dtype=np.int32),
           'mask': np.ones(8, np.float32)}
  batch = parallel.to_global(batch, experiment.mesh)
  state, metrics = experiment.train_step(experiment.state, batch, jax.random.key(0))
  assert np.isfinite(float(metrics['loss'])) and int(state.step) == 1
  assert experiment.eval_step(state, batch)['probs'].shape == (8, 3)


def test_the_train_state_keeps_its_checkpoint_layout():
  # Checkpoints store the state's array fields by name, and a restore target with a
  # field the files lack fails: a new field would make every existing checkpoint
  # unreadable. New state goes in a subclass, as EmaTrainState (train.ema) does.
  names = [field.name for field in dataclasses.fields(TrainState)
           if field.metadata.get('pytree_node', True)]
  assert names == ['step', 'params', 'opt_state', 'batch_stats']
