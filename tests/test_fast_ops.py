"""medjax's CPU formulations must equal the operations they replace, in outputs and
gradients: the im2col convolution against lax.conv, the strided-slice max pool
against flax.linen.max_pool."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from medjax.models.conv import (XLA_KERNEL_GRADIENT_INPUT, WIDE_INPUT, _kernel_gradient,
                                conv_via_matmul)
from medjax.models.pool import max_pool

DIMENSIONS = lax.conv_dimension_numbers((1, 1, 1, 1), (1, 1, 1, 1), ('NHWC', 'HWIO', 'NHWC'))


@pytest.mark.parametrize('kernel,strides,padding,size', [
    (3, 1, 'SAME', 7), (3, 2, 'SAME', 7), (3, 2, 'SAME', 8), (1, 1, 'SAME', 5),
    (1, 2, 'SAME', 5), (7, 2, 'SAME', 28), (3, 1, 'VALID', 6), (4, 4, 'VALID', 28),
    (3, 1, 'SAME', 2), (3, 1, ((2, 0), (1, 1)), 5),
    # Convolutions over time (Conv1D: (1, k) kernels on (1, L) maps): XLA's forward;
    # long kernels (LONG_KERNEL) train with XLA's convolutions too, unless strided; a
    # signal of a few leads with a short kernel trains as the patch matmul.
    ((1, 8), 1, 'SAME', (1, 20)), ((1, 5), 2, 'SAME', (1, 21)), ((1, 3), 1, 'VALID', (1, 9)),
    ((1, 40), 1, 'SAME', (1, 45)), ((1, 17), 1, 'SAME', (1, 30)),
    ((1, 20), 1, ((0, 0), (3, 0)), (1, 30)), ((1, 16), 2, 'SAME', (1, 33))])
def test_outputs_and_gradients_match_lax(kernel, strides, padding, size):
  kx, kw = jax.random.split(jax.random.key(0))
  x = jax.random.normal(kx, (2,) + (size if isinstance(size, tuple) else (size, size)) + (3,))
  w = jax.random.normal(kw, (kernel if isinstance(kernel, tuple) else (kernel, kernel)) + (3, 4))
  _assert_matches_lax(x, w, (strides, strides), padding)


@pytest.mark.parametrize('taps,strides,padding,channels', [
    (8, 1, 'SAME', WIDE_INPUT), (5, 1, ((0, 0), (3, 1)), WIDE_INPUT),
    (3, 1, ((0, 0), (3, 0)), WIDE_INPUT),  # padding beyond the kernel: the input gradient crops
    (3, 1, 'VALID', XLA_KERNEL_GRADIENT_INPUT), (8, 1, 'SAME', XLA_KERNEL_GRADIENT_INPUT),
    (8, 2, 'SAME', WIDE_INPUT)])
def test_time_convolutions_of_wide_inputs_match_lax(taps, strides, padding, channels):
  # From WIDE_INPUT channels a stride-1 convolution over time trains with XLA's
  # convolutions, from XLA_KERNEL_GRADIENT_INPUT its kernel gradient too.
  kx, kw = jax.random.split(jax.random.key(1))
  x = jax.random.normal(kx, (2, 1, 19, channels))
  w = jax.random.normal(kw, (1, taps, channels, 4)) / np.sqrt(channels)
  _assert_matches_lax(x, w, (1, strides), padding)


def _assert_matches_lax(x, w, strides, padding):
  def loss(conv, x, w):
    y = conv(x, w, strides, padding, dimension_numbers=DIMENSIONS)
    return jnp.sum(jnp.sin(y)), y

  (_, ref), ref_grads = jax.value_and_grad(
      lambda x, w: loss(lax.conv_general_dilated, x, w), argnums=(0, 1), has_aux=True)(x, w)
  (_, out), grads = jax.value_and_grad(
      lambda x, w: loss(conv_via_matmul, x, w), argnums=(0, 1), has_aux=True)(x, w)
  np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-4)
  # Not differentiated (evaluation), the same values.
  np.testing.assert_allclose(conv_via_matmul(x, w, strides, padding, dimension_numbers=DIMENSIONS),
                             ref, rtol=1e-5, atol=1e-4)
  for got, want in zip(grads, ref_grads):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize('rows,k,n', [
    (512, 72, 4),    # tall, long: the two half-products
    (511, 72, 4),    # odd rows: the plain dot
    (512, 8, 16),    # wide: the plain dot
    (64, 576, 128),  # short against its size: the plain dot
])
def test_kernel_gradient_equals_the_plain_product(rows, k, n):
  kp, kg = jax.random.split(jax.random.key(2))
  patches = jax.random.normal(kp, (rows, k))
  grad = jax.random.normal(kg, (rows, n))
  got = jax.jit(lambda p, g: _kernel_gradient(p, g, None))(patches, grad)
  want = np.asarray(patches, np.float64).T @ np.asarray(grad, np.float64)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


def test_dilated_convolution_falls_back_to_lax():
  x = jnp.ones((1, 9, 9, 2))
  w = jnp.ones((3, 3, 2, 2))
  got = conv_via_matmul(x, w, (1, 1), 'SAME', rhs_dilation=(2, 2), dimension_numbers=DIMENSIONS)
  want = lax.conv_general_dilated(x, w, (1, 1), 'SAME', rhs_dilation=(2, 2),
                                  dimension_numbers=DIMENSIONS)
  np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize('window,stride,size', [
    (2, 2, 28), (2, 2, 7), (3, 3, 8), (3, 2, 8), (3, 2, 9), (3, 2, 2)])
def test_max_pool_matches_flax_including_ties(window, stride, size):
  # Rounded values make many ties: the gradient must go to the same (first) position.
  x = jnp.round(2 * jax.random.normal(jax.random.key(0), (2, size, size, 3)))
  out_size = -(-size // stride)
  weights = jax.random.normal(jax.random.key(1), out_size * out_size * 3)
  pool_args = ((window,) * 2, (stride,) * 2)

  def loss(pool, x):
    y = pool(x)
    return jnp.sum(y.reshape(2, -1) * weights), y

  (_, ref), ref_grad = jax.value_and_grad(
      lambda x: loss(lambda x: nn.max_pool(x, *pool_args, padding='SAME'), x),
      has_aux=True)(x)
  (_, out), grad = jax.jit(jax.value_and_grad(
      lambda x: loss(lambda x: max_pool(x, *pool_args), x), has_aux=True))(x)
  assert int(jnp.sum(ref_grad != 0)) > 0
  np.testing.assert_array_equal(out, ref)
  # Overlapping windows add up in another order: equal to rounding, where a tie sent
  # to the wrong position would be off by a whole weight.
  np.testing.assert_allclose(grad, ref_grad, rtol=1e-6, atol=1e-6)
