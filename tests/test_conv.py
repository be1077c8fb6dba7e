"""The im2col convolution must equal lax.conv in outputs and gradients."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from medjax.models.conv import conv_via_matmul

DIMENSIONS = lax.conv_dimension_numbers((1, 1, 1, 1), (1, 1, 1, 1), ('NHWC', 'HWIO', 'NHWC'))


@pytest.mark.parametrize('kernel,strides,padding,size', [
    (3, 1, 'SAME', 7), (3, 2, 'SAME', 7), (3, 2, 'SAME', 8), (1, 1, 'SAME', 5),
    (1, 2, 'SAME', 5), (7, 2, 'SAME', 28), (3, 1, 'VALID', 6), (4, 4, 'VALID', 28),
    (3, 1, 'SAME', 2), (3, 1, ((2, 0), (1, 1)), 5)])
def test_outputs_and_gradients_match_lax(kernel, strides, padding, size):
  kx, kw = jax.random.split(jax.random.key(0))
  x = jax.random.normal(kx, (2, size, size, 3))
  w = jax.random.normal(kw, (kernel, kernel, 3, 4))
  s = (strides, strides)

  def loss(conv, x, w):
    y = conv(x, w, s, padding, dimension_numbers=DIMENSIONS)
    return jnp.sum(jnp.sin(y)), y

  (_, ref), ref_grads = jax.value_and_grad(
      lambda x, w: loss(lax.conv_general_dilated, x, w), argnums=(0, 1), has_aux=True)(x, w)
  (_, out), grads = jax.value_and_grad(
      lambda x, w: loss(conv_via_matmul, x, w), argnums=(0, 1), has_aux=True)(x, w)
  np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-4)
  for got, want in zip(grads, ref_grads):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_dilated_convolution_falls_back_to_lax():
  x = jnp.ones((1, 9, 9, 2))
  w = jnp.ones((3, 3, 2, 2))
  got = conv_via_matmul(x, w, (1, 1), 'SAME', rhs_dilation=(2, 2), dimension_numbers=DIMENSIONS)
  want = lax.conv_general_dilated(x, w, (1, 1), 'SAME', rhs_dilation=(2, 2),
                                  dimension_numbers=DIMENSIONS)
  np.testing.assert_array_equal(got, want)
