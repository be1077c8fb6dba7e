"""Saliency methods, and the model-randomisation sanity check (Adebayo et al. 2018)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from medjax import explain, parallel
from medjax.data import pipeline
from medjax.data.modalities import image as image_modality
from medjax.train import setup
from tests.conftest import small_config

OPTIONS = dict(rng=jax.random.key(0), num_samples=4, noise=0.15, steps=8)


@pytest.fixture(scope='module')
def trained_and_random(breast):
  """A seed CNN trained briefly on BreastMNIST, and the same network re-initialised."""
  config = small_config('cnn')
  config.train.batch_size = 64
  config.optim.schedule = 'constant'
  config.mesh.data = 1  # sharding is tested elsewhere; one device keeps this quick
  experiment = setup.build_experiment(config)
  loader = iter(pipeline.train_batches(breast.sources['train'], breast.task, config.data,
                                       global_batch_size=64, seed=0))
  state = experiment.state
  for _ in range(60):
    batch = parallel.to_global(setup.device_batch(next(loader)), experiment.mesh)
    state, _ = experiment.train_step(state, batch, jax.random.key(1))
  config.seed = 99
  random_state = setup.build_experiment(config).state
  images = next(pipeline.eval_batches(breast.sources['test'], breast.task, batch_size=16))['image']
  return state, random_state, images


def _maps(state, images, method, reference_state=None):
  """Maps explaining the class `reference_state` (default: `state`) predicts."""
  reference = reference_state or state
  logits = reference.apply_fn({'params': reference.params}, {'image': images}, train=False)
  classes = np.asarray(jnp.argmax(logits, -1))
  options = dict(OPTIONS, layer='block2')
  return np.asarray(explain.saliency(method, state.apply_fn, {'params': state.params},
                                     {'image': images}, 'image', classes, **options))


@pytest.mark.parametrize('method', explain.METHODS)
def test_maps_are_normalised_images(trained_and_random, method):
  state, _, images = trained_and_random
  maps = _maps(state, images, method)
  assert maps.shape == images.shape[:3]
  assert np.all(np.isfinite(maps)) and maps.min() >= 0
  peaks = maps.max((1, 2))
  # Each map peaks at 1; Grad-CAM may be all zero where nothing speaks for the class.
  assert np.all(np.isclose(peaks, 1) | ((peaks == 0) & (method == 'grad_cam')))
  assert np.sum(np.isclose(peaks, 1)) >= len(maps) // 4
  np.testing.assert_array_equal(maps, _maps(state, images, method))  # deterministic


@pytest.mark.parametrize('method', explain.METHODS)
def test_model_randomisation_sanity_check(trained_and_random, method):
  """Saliency of the trained model must differ clearly from a re-initialised model's."""
  state, random_state, images = trained_and_random
  trained_maps = _maps(state, images, method)
  random_maps = _maps(random_state, images, method, reference_state=state)
  correlations = [stats.spearmanr(a.ravel(), b.ravel()).statistic
                  for a, b in zip(trained_maps, random_maps)]
  assert np.sum(np.isfinite(correlations)) >= 4, correlations
  assert np.nanmean(correlations) < 0.5, correlations


def test_integrated_gradients_satisfy_completeness(trained_and_random):
  """Sum of attributions = logit(image) - logit(baseline), up to the quadrature error."""
  state, _, images = trained_and_random
  variables = {'params': state.params}
  image = images[:1]
  baseline = jnp.full_like(image, image_modality.BLACK)
  logit = lambda x: state.apply_fn(variables, {'image': x}, train=False)[:, 0].sum()  # noqa
  alphas = (jnp.arange(64) + 0.5) / 64
  grads = jax.jit(jax.vmap(lambda a: jax.grad(logit)(baseline + a * (image - baseline))))(alphas)
  attributions = ((image - baseline) * grads.mean(0)).sum()
  assert float(attributions) == pytest.approx(float(logit(image) - logit(baseline)), rel=0.05)


def test_grad_cam_names_a_bad_layer(trained_and_random):
  state, _, images = trained_and_random
  with pytest.raises(ValueError, match="explain.layer='stage9'"):
    explain.saliency('grad_cam', state.apply_fn, {'params': state.params}, {'image': images},
                     'image', np.zeros(len(images), np.int32), layer='stage9')
