"""Convolution as patch extraction + one matrix multiply (im2col).

XLA's CPU convolutions are slow here, above all the weight-gradient
convolutions of the backward pass and 3x3 convolutions on small maps, while its
dot is fast. `conv_via_matmul` has the signature of `lax.conv_general_dilated`
so it can be handed to `flax.linen.Conv(conv_general_dilated=...)`: the
parameters stay exactly those of a plain `nn.Conv`. Only the 2-D, NHWC/HWIO,
undilated, ungrouped case is rewritten; anything else goes to lax unchanged.
The backward pass is a dot plus the transpose of strided slices (pad + add).
"""
import jax.numpy as jnp
from jax import lax


def _is_plain_2d(lhs, rhs, lhs_dilation, rhs_dilation, dimension_numbers,
                 feature_group_count):
  undilated = all(d == 1 for d in (lhs_dilation or ())) and all(
      d == 1 for d in (rhs_dilation or ()))
  nhwc = dimension_numbers is not None and tuple(dimension_numbers.lhs_spec) == (0, 3, 1, 2)
  hwio = dimension_numbers is not None and tuple(dimension_numbers.rhs_spec) == (3, 2, 0, 1)
  return lhs.ndim == 4 and rhs.ndim == 4 and undilated and nhwc and hwio and (
      feature_group_count == 1)


def conv_via_matmul(lhs, rhs, window_strides, padding, lhs_dilation=None,
                    rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                    precision=None, **kwargs):
  if not _is_plain_2d(lhs, rhs, lhs_dilation, rhs_dilation, dimension_numbers,
                      feature_group_count) or kwargs:
    return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation,
                                    rhs_dilation, dimension_numbers, feature_group_count,
                                    precision=precision, **kwargs)
  kernel_h, kernel_w, in_features, out_features = rhs.shape
  stride_h, stride_w = window_strides
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(lhs.shape[1:3], (kernel_h, kernel_w), window_strides,
                                  padding)
  x = jnp.pad(lhs, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)))
  out_h = (x.shape[1] - kernel_h) // stride_h + 1
  out_w = (x.shape[2] - kernel_w) // stride_w + 1
  columns = [
      x[:, i:i + stride_h * (out_h - 1) + 1:stride_h, j:j + stride_w * (out_w - 1) + 1:stride_w]
      for i in range(kernel_h) for j in range(kernel_w)
  ]
  patches = columns[0] if len(columns) == 1 else jnp.concatenate(columns, axis=-1)
  kernel = rhs.reshape(kernel_h * kernel_w * in_features, out_features)
  return jnp.dot(patches, kernel, precision=precision)


CONV_IMPLS = {'matmul': conv_via_matmul, 'lax': lax.conv_general_dilated}
