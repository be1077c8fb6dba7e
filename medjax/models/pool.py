"""Max pooling as the maximum of strided slices, with the gradient of `nn.max_pool`.

XLA's CPU backward pass of `reduce_window` max (select-and-scatter) runs at a
small fraction of memory speed: for the seed CNN at 28 px it took longer than
the convolutions it sits between. Here the forward pass is an elementwise
maximum over the kh*kw strided views of the padded input, and the backward
pass routes each output's gradient to the first window position (in row-major
order) holding the maximum, exactly as select-and-scatter does, so values and
gradients equal `flax.linen.max_pool(..., padding='SAME')` (ties included).
"""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax


def _padded(x, window, strides):
  pads = lax.padtype_to_pads(x.shape[1:3], window, strides, 'SAME')
  padded = jnp.pad(x, ((0, 0), tuple(pads[0]), tuple(pads[1]), (0, 0)),
                   constant_values=-jnp.inf)
  return padded, pads


def _views(padded, window, strides):
  """(offset, strided view) for each window position: view[b, h, w] = padded[b, h*s + i, ...]."""
  (kh, kw), (sh, sw) = window, strides
  out_h = (padded.shape[1] - kh) // sh + 1
  out_w = (padded.shape[2] - kw) // sw + 1
  for i in range(kh):
    for j in range(kw):
      yield (i, j), padded[:, i:i + sh * (out_h - 1) + 1:sh, j:j + sw * (out_w - 1) + 1:sw]


def max_pool(x, window=(2, 2), strides=(2, 2)):
  """Max pooling with 'SAME' padding of images (N, H, W, C), strided slices, or of
  volumes (N, D, H, W, C), flax's `reduce_window`."""
  if x.ndim == 5:
    return nn.max_pool(x, tuple(window), tuple(strides), padding='SAME')
  return max_pool_2d(x, tuple(window), tuple(strides))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def max_pool_2d(x, window=(2, 2), strides=(2, 2)):
  """NHWC max pooling with 'SAME' padding."""
  padded, _ = _padded(x, window, strides)
  views = [view for _, view in _views(padded, window, strides)]
  return functools.reduce(jnp.maximum, views)


def _max_pool_forward(x, window, strides):
  out = max_pool_2d(x, window, strides)
  return out, (x, out)


def _max_pool_backward(window, strides, residuals, grad):
  x, out = residuals
  padded, pads = _padded(x, window, strides)
  if tuple(window) == tuple(strides):
    grad_padded = _tiled_window_gradient(padded, out, grad, window)
  else:
    grad_padded = _overlapping_window_gradient(padded, out, grad, window, strides)
  (top, _), (left, _) = pads
  return (grad_padded[:, top:top + x.shape[1], left:left + x.shape[2]],)


def _tiled_window_gradient(padded, out, grad, window):
  """Windows that tile the padded input (window == strides): a broadcast select.

  With 'SAME' padding the padded input is exactly (out_h*kh, out_w*kw), so it reshapes
  to (batch, out_h, kh, out_w, kw, channels) and each window is one (kh, kw) block: no
  interior padding and no sum, one elementwise pass that XLA fuses with its neighbours.
  """
  kh, kw = window
  batch, out_h, out_w, channels = out.shape
  # The row-major position in its window of each output's first maximum (kh*kw: none).
  first = jnp.full(out.shape, kh * kw, jnp.int32)
  for (i, j), view in reversed(list(_views(padded, window, window))):
    first = jnp.where(view == out, i * kw + j, first)
  position = (jnp.arange(kh)[:, None] * kw + jnp.arange(kw)).reshape(1, 1, kh, 1, kw, 1)
  blocks = jnp.where(position == first[:, :, None, :, None, :],
                     grad[:, :, None, :, None, :], jnp.zeros((), grad.dtype))
  return blocks.reshape(batch, out_h * kh, out_w * kw, channels)


def _overlapping_window_gradient(padded, out, grad, window, strides):
  """The transpose of select-and-scatter as a sum of interior-padded selections."""
  taken = jnp.zeros(out.shape, bool)
  grad_padded = jnp.zeros_like(padded)
  zero = jnp.zeros((), grad.dtype)
  for (i, j), view in _views(padded, window, strides):
    chosen = (view == out) & ~taken
    taken = taken | chosen
    # The transpose of the strided view: place each value back at its input position.
    placement = [(0, 0, 0), (i, padded.shape[1] - i - (view.shape[1] - 1) * strides[0] - 1,
                             strides[0] - 1),
                 (j, padded.shape[2] - j - (view.shape[2] - 1) * strides[1] - 1,
                  strides[1] - 1), (0, 0, 0)]
    grad_padded = grad_padded + lax.pad(jnp.where(chosen, grad, zero), zero, placement)
  return grad_padded


max_pool_2d.defvjp(_max_pool_forward, _max_pool_backward)
