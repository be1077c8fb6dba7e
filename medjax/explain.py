"""Saliency: vanilla gradients, SmoothGrad, integrated gradients and Grad-CAM.

Every method maps (variables, images, target classes) to one non-negative map
per image of shape (H, W), scaled to [0, 1], explaining the logit of the target
class. `apply` is a model's `apply` function; images are model inputs (the
normalised 'image' batch key).

  * gradients: |d logit / d pixel|, max over channels (Simonyan et al. 2014);
  * smoothgrad: gradients averaged over noisy copies (Smilkov et al. 2017);
  * integrated_gradients: path integral from a black baseline (Sundararajan et al.
    2017), |sum over channels|;
  * grad_cam: ReLU of the feature map weighted by its spatially pooled gradients
    (Selvaraju et al. 2017), at a tapped layer of the CNN or ResNet, upsampled.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

METHODS = ('gradients', 'smoothgrad', 'integrated_gradients', 'grad_cam')
GRAD_CAM_LAYERS = {'cnn': 'block2', 'resnet': 'stage2'}
BLACK = -1.0  # a black pixel after the pipeline's (x - 0.5) / 0.5 normalisation


def _normalise(maps):
  maps = maps - maps.min(axis=(1, 2), keepdims=True)
  return maps / jnp.maximum(maps.max(axis=(1, 2), keepdims=True), 1e-12)


def _target_logit_sum(apply, variables, classes):
  def total(images):
    logits = apply(variables, {'image': images}, train=False)
    return jnp.sum(jnp.take_along_axis(logits, classes[:, None], axis=1))
  return total


def gradients(apply, variables, images, classes, **_):
  grads = jax.grad(_target_logit_sum(apply, variables, classes))(images)
  return _normalise(jnp.abs(grads).max(-1))


def smoothgrad(apply, variables, images, classes, *, rng, num_samples=16, noise=0.15, **_):
  """Noise standard deviation `noise` is relative to the input range (2 here)."""
  grad_fn = jax.grad(_target_logit_sum(apply, variables, classes))

  def one(key):
    return jnp.abs(grad_fn(images + noise * 2.0 * jax.random.normal(key, images.shape)))
  total = jax.lax.map(one, jax.random.split(rng, num_samples)).mean(0)
  return _normalise(total.max(-1))


def integrated_gradients(apply, variables, images, classes, *, steps=32, **_):
  baseline = jnp.full_like(images, BLACK)
  grad_fn = jax.grad(_target_logit_sum(apply, variables, classes))
  alphas = (jnp.arange(steps) + 0.5) / steps  # midpoint rule
  path_grads = jax.lax.map(lambda a: grad_fn(baseline + a * (images - baseline)), alphas)
  attributions = (images - baseline) * path_grads.mean(0)
  return _normalise(jnp.abs(attributions.sum(-1)))


def grad_cam(apply, variables, images, classes, *, layer, **_):
  batch = {'image': images}
  _, collections = apply(variables, batch, train=False, mutable=['intermediates',
                                                               'perturbations'])
  if layer not in collections['intermediates']:
    raise ValueError(f'explain.layer={layer!r} is not a tapped layer of this model; taps: '
                     f'{sorted(collections["intermediates"])}')
  features = collections['intermediates'][layer][0]

  def total(perturbations):
    logits = apply({**variables, 'perturbations': perturbations}, batch, train=False)
    return jnp.sum(jnp.take_along_axis(logits, classes[:, None], axis=1))

  feature_grads = jax.grad(total)(collections['perturbations'])[layer]
  weights = feature_grads.mean(axis=(1, 2), keepdims=True)
  cam = jax.nn.relu(jnp.sum(weights * features, axis=-1))
  cam = jax.image.resize(cam, (cam.shape[0],) + images.shape[1:3], method='bilinear')
  return _normalise(cam)


def saliency(method: str, apply, variables, images, classes, **options):
  """Dispatches to one of METHODS; `options` are the method's keyword arguments."""
  functions = {'gradients': gradients, 'smoothgrad': smoothgrad,
               'integrated_gradients': integrated_gradients, 'grad_cam': grad_cam}
  if method not in functions:
    raise ValueError(f'saliency method {method!r} is not one of {METHODS}')
  # One compiled program per call (run op by op, a method compiles each primitive
  # separately), on one local device: a few images need no mesh, and a state
  # replicated over N devices would otherwise make every device do all the work.
  device = jax.local_devices()[0]
  traced = {name: value for name, value in options.items() if name == 'rng'}
  static = {name: value for name, value in options.items() if name != 'rng'}
  compiled = jax.jit(functools.partial(functions[method], apply, **static))
  variables, images, classes, traced = jax.device_put(
      (variables, np.asarray(images), np.asarray(classes), traced), device)
  return compiled(variables, images, classes, **traced)
