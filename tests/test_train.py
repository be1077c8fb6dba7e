import jax
import numpy as np
import pytest

from medjax.data import pipeline
from medjax.train import loop
from medjax.train import step as steps
from tests.conftest import small_config


def _one_step(config, batch):
  experiment = loop.build_experiment(config)
  from medjax import parallel
  global_batch = parallel.to_global(loop.device_batch(batch), experiment.mesh)
  state, metrics = experiment.train_step(experiment.state, global_batch, jax.random.key(7))
  return jax.device_get(state.params), float(metrics['loss'])


@pytest.mark.parametrize('model', ['cnn', 'resnet', 'vit'])
def test_train_step_on_8_devices_matches_1_device(breast, model):
  config = small_config(model)
  config.model.cnn.dropout = 0.0  # dropout masks depend on the sharding of the rng
  loader = pipeline.train_loader(breast.sources['train'], breast.task, config.data,
                                 batch_size=config.train.batch_size, seed=0)
  batch = next(iter(loader))
  config.mesh.data = 1
  params_1, loss_1 = _one_step(config, batch)
  config.mesh.data = 8
  params_8, loss_8 = _one_step(config, batch)
  assert abs(loss_1 - loss_8) < 1e-5
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5, rtol=0), params_1,
               params_8)


def test_loss_falls_on_a_small_real_subset(breast):
  config = small_config('cnn')
  config.train.batch_size = 64
  config.model.cnn.dropout = 0.0
  config.optim.schedule = 'constant'
  experiment = loop.build_experiment(config)
  from medjax import parallel
  batch = next(pipeline.eval_batches(breast.sources['train'], breast.task, batch_size=64))
  global_batch = parallel.to_global(loop.device_batch(batch), experiment.mesh)
  state, losses = experiment.state, []
  for _ in range(40):
    state, metrics = experiment.train_step(state, global_batch, jax.random.key(0))
    losses.append(float(metrics['loss']))
  assert losses[-1] < 0.5 * losses[0]
  assert all(np.isfinite(losses))


def test_balanced_class_weights_follow_the_class_counts(breast):
  weights = steps.class_weights(breast.task, 'balanced')
  counts = np.asarray(breast.task.class_counts)
  np.testing.assert_allclose(weights * counts, counts.sum() / 2, rtol=1e-6)
  np.testing.assert_array_equal(steps.class_weights(breast.task, 'none'), [1, 1])
  with pytest.raises(ValueError, match="train.class_weights='inverse'"):
    steps.class_weights(breast.task, 'inverse')


def test_resume_after_a_crash_gives_the_same_parameters(tmp_path):
  config = small_config('cnn')
  config.data.augment.rotation_degrees = 10.0  # the augmentation stream must resume too
  uninterrupted = loop.build_experiment(config)
  loop.train(uninterrupted, tmp_path / 'a')
  # Crash after the step-3 checkpoint: remove everything written later, then rerun.
  experiment = loop.build_experiment(config)
  loop.train(experiment, tmp_path / 'b')
  for folder in ('checkpoints', 'best'):
    for step_dir in (tmp_path / 'b' / folder).iterdir():
      if step_dir.name == '6':
        import shutil
        shutil.rmtree(step_dir)
  loop.train(loop.build_experiment(config), tmp_path / 'b')
  from medjax import checkpoint, parallel
  restored = []
  for run in ('a', 'b'):
    manager = checkpoint.Checkpoints(tmp_path / run / 'checkpoints', max_to_keep=2)
    abstract = checkpoint.abstract_like(experiment.state, parallel.replicated(experiment.mesh))
    state, _ = manager.restore(6, abstract)
    restored.append(jax.device_get(state.params))
    manager.close()
  jax.tree.map(np.testing.assert_array_equal, *restored)


def test_nan_loss_stops_training_with_the_step(tmp_path):
  config = small_config('cnn')
  config.optim.learning_rate = 1e30
  config.train.log_every = 1
  with pytest.raises(loop.NonFiniteLossError, match=r'training loss is nan at step \d'):
    loop.train(loop.build_experiment(config), tmp_path)
