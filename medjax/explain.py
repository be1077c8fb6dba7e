"""Saliency: vanilla gradients, SmoothGrad, integrated gradients and Grad-CAM, over
any input key: pixels for an image, time for a signal.

Every method maps (variables, batch, input key, target classes) to one non-negative
map per example over the input's positions (H, W for an image, length for a signal;
channels reduced), scaled to [0, 1], explaining the logit of the target class. The
other inputs of the batch are held fixed. `apply` is a model's `apply` function.

  * gradients: |d logit / d input|, max over channels (Simonyan et al. 2014);
  * smoothgrad: gradients averaged over noisy copies (Smilkov et al. 2017);
  * integrated_gradients: path integral from a baseline (black pixels, a flat signal
    at the training mean; Sundararajan et al. 2017), |sum over channels|;
  * grad_cam: ReLU of a tapped feature map weighted by its pooled gradients
    (Selvaraju et al. 2017), upsampled to the input's positions.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from medjax.config import ConfigError

METHODS = ('gradients', 'smoothgrad', 'integrated_gradients', 'grad_cam')


def configured_methods(value: str) -> list[str]:
  """The methods of an `explain.methods` value (comma separated); ConfigError for one
  that is not among METHODS."""
  methods = [m.strip() for m in value.split(',') if m.strip()]
  if set(methods) - set(METHODS):
    raise ConfigError(f'explain.methods={value!r}: each must be one of {METHODS}')
  return methods


def _normalise(maps):
  axes = tuple(range(1, maps.ndim))
  maps = maps - maps.min(axis=axes, keepdims=True)
  return maps / jnp.maximum(maps.max(axis=axes, keepdims=True), 1e-12)


def _target_logit_sum(apply, variables, batch, key, classes):
  def total(x):
    logits = apply(variables, {**batch, key: x}, train=False)
    return jnp.sum(jnp.take_along_axis(logits, classes[:, None], axis=1))
  return total


def gradients(apply, variables, batch, key, classes, **_):
  grads = jax.grad(_target_logit_sum(apply, variables, batch, key, classes))(batch[key])
  return _normalise(jnp.abs(grads).max(-1))


def smoothgrad(apply, variables, batch, key, classes, *, rng, num_samples=16, noise=0.15, **_):
  """Noise standard deviation `noise` is relative to the input's range over the batch."""
  grad_fn = jax.grad(_target_logit_sum(apply, variables, batch, key, classes))
  x = batch[key]
  scale = noise * (x.max() - x.min())

  def one(rng_key):
    return jnp.abs(grad_fn(x + scale * jax.random.normal(rng_key, x.shape)))
  total = jax.lax.map(one, jax.random.split(rng, num_samples)).mean(0)
  return _normalise(total.max(-1))


def integrated_gradients(apply, variables, batch, key, classes, *, steps=32, baseline=0.0, **_):
  x = batch[key]
  start = jnp.full_like(x, baseline)
  grad_fn = jax.grad(_target_logit_sum(apply, variables, batch, key, classes))
  alphas = (jnp.arange(steps) + 0.5) / steps  # midpoint rule
  path_grads = jax.lax.map(lambda a: grad_fn(start + a * (x - start)), alphas)
  attributions = (x - start) * path_grads.mean(0)
  return _normalise(jnp.abs(attributions.sum(-1)))


def _find_tap(tree, layer):
  """The value of the tap named `layer` in a nested collection (encoders nest them)."""
  flat = traverse_util.flatten_dict(tree)
  found = [path for path in flat if path[-1] == layer]
  return found[0] if found else None


def grad_cam(apply, variables, batch, key, classes, *, layer, **_):
  _, collections = apply(variables, batch, train=False, mutable=['intermediates',
                                                               'perturbations'])
  path = _find_tap(collections['intermediates'], layer)
  if path is None:
    taps = sorted(p[-1] for p in traverse_util.flatten_dict(collections['intermediates']))
    raise ValueError(f'explain.layer={layer!r} is not a tapped layer of this model; taps: {taps}')
  features = traverse_util.flatten_dict(collections['intermediates'])[path][0]  # sow: a tuple
  perturbation_path = _find_tap(collections['perturbations'], layer)

  def total(perturbations):
    logits = apply({**variables, 'perturbations': perturbations}, batch, train=False)
    return jnp.sum(jnp.take_along_axis(logits, classes[:, None], axis=1))

  feature_grads = traverse_util.flatten_dict(jax.grad(total)(collections['perturbations']))[
      perturbation_path]
  spatial = tuple(range(1, features.ndim - 1))
  weights = feature_grads.mean(axis=spatial, keepdims=True)
  cam = jax.nn.relu(jnp.sum(weights * features, axis=-1))
  cam = jax.image.resize(cam, (cam.shape[0],) + batch[key].shape[1:-1], method='linear')
  return _normalise(cam)


FUNCTIONS = {'gradients': gradients, 'smoothgrad': smoothgrad,
             'integrated_gradients': integrated_gradients, 'grad_cam': grad_cam}


def saliency(method: str, apply, variables, batch: dict, key: str, classes, **options):
  """Dispatches to one of METHODS; `options` are the method's keyword arguments."""
  if method not in FUNCTIONS:
    raise ValueError(f'saliency method {method!r} is not one of {METHODS}')
  # One compiled program per call (run op by op, a method compiles each primitive
  # separately), on one local device: a few examples need no mesh, and a state
  # replicated over N devices would otherwise make every device do all the work.
  device = jax.local_devices()[0]
  traced = {name: value for name, value in options.items() if name == 'rng'}
  static = {name: value for name, value in options.items() if name != 'rng'}
  compiled = jax.jit(functools.partial(FUNCTIONS[method], apply, key=key, **static))
  variables, batch, classes, traced = jax.device_put(
      (variables, {k: np.asarray(v) for k, v in batch.items()}, np.asarray(classes), traced),
      device)
  return compiled(variables, batch, classes=classes, **traced)
