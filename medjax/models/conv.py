"""Convolution as patch extraction + one matrix multiply (im2col).

XLA's CPU convolutions are slow here, above all the weight-gradient
convolutions of the backward pass and 3x3 convolutions on small maps, while its
dot is fast. `conv_via_matmul` has the signature of `lax.conv_general_dilated`
so it can be handed to `flax.linen.Conv(conv_general_dilated=...)`: the
parameters stay exactly those of a plain `nn.Conv`. Only the 2-D, NHWC/HWIO,
undilated, ungrouped case is rewritten; anything else goes to lax unchanged.
The backward pass is two dots (see `_patch_matmul_backward`) plus the transpose
of strided slices (pad + add). Convolutions over time (signals) are XLA's own 1-D
convolutions, except where a patch matrix is cheaper in training (`_time_conv`).
"""
import functools

import jax
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
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(lhs.shape[1:3], (kernel_h, kernel_w), window_strides,
                                  padding)
  padding = tuple(tuple(int(p) for p in pair) for pair in padding)
  if lhs.shape[1] == 1 and kernel_h == 1 and kernel_w > 1:
    return _time_conv(lhs, rhs, tuple(window_strides), padding, dimension_numbers, precision)
  patches = _patches(lhs, (kernel_h, kernel_w), window_strides, padding)
  kernel = rhs.reshape(kernel_h * kernel_w * in_features, out_features)
  return _patch_matmul(patches, kernel, precision)


def _patches(lhs, kernel_shape, window_strides, padding):
  """(B, H', W', kh * kw * C): each output position's input window, row-major."""
  (kernel_h, kernel_w), (stride_h, stride_w) = kernel_shape, window_strides
  x = jnp.pad(lhs, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)))
  out_h = (x.shape[1] - kernel_h) // stride_h + 1
  out_w = (x.shape[2] - kernel_w) // stride_w + 1
  columns = [
      x[:, i:i + stride_h * (out_h - 1) + 1:stride_h, j:j + stride_w * (out_w - 1) + 1:stride_w]
      for i in range(kernel_h) for j in range(kernel_w)
  ]
  return columns[0] if len(columns) == 1 else jnp.concatenate(columns, axis=-1)


# A stride-1 convolution over time trains with XLA's convolutions where its kernel has this
# many taps or its input this many channels (see `_time_conv`).
LONG_KERNEL = 16
WIDE_INPUT = 8
# From this many input channels, XLA's convolution takes the kernel gradient too.
XLA_KERNEL_GRADIENT_INPUT = 128


def _over_time(x, kernel, stride, padding, precision):
  """XLA's convolution of (B, L, C) by (k, C, N), as the 1-D convolution it is: written
  as a 2-D convolution of the (B, 1, L, C) maps Conv1D hands over, XLA's CPU
  convolutions trained ResNet1D's MIT-BIH step about 1.3x slower (benchmarks/README.md)."""
  return lax.conv_general_dilated(x, kernel, (stride,), (tuple(padding),),
                                  dimension_numbers=('NWC', 'WIO', 'NWC'), precision=precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _time_conv(lhs, rhs, window_strides, padding, dimension_numbers, precision):
  """A convolution over time (Conv1D's (1, k) kernels on (B, 1, L, C) maps). Evaluated
  alone (evaluation, prediction) it is XLA's own convolution, which made the ECG
  encoders' evaluation 1.15-2x faster than the patch matmul (benchmarks/README.md).
  Differentiated (training), a stride-1 convolution with a long kernel (InceptionTime's
  40 and 20 taps, `LONG_KERNEL`) or a wide input (`WIDE_INPUT` channels: every layer of
  the ResNet but the first) keeps XLA's convolution forward and takes the input gradient
  as the convolution of the output gradient with the flipped kernel; the kernel gradient
  is the product of a patch matrix (k x C floats a position, built in the backward pass)
  with the output gradient, or from `XLA_KERNEL_GRADIENT_INPUT` channels on XLA's own
  kernel-gradient convolution (faster there in ResNet1D's ECG5000 step, slower at 32-64
  channels, where XLA transposes each layer's input for it). A strided convolution, or
  one reading a signal of one or two leads with a short kernel, where the patch matrix is
  narrow, trains as the patch matmul. All forms give the same values to float rounding."""
  del dimension_numbers  # NHWC / HWIO (see `conv_via_matmul`)
  return _over_time(lhs[:, 0], rhs[0], window_strides[1], padding[1], precision)[:, None]


def _trained_by_xla(rhs, window_strides) -> bool:
  taps, in_features = rhs.shape[1:3]
  return tuple(window_strides) == (1, 1) and (taps >= LONG_KERNEL or in_features >= WIDE_INPUT)


def _time_conv_forward(lhs, rhs, window_strides, padding, dimension_numbers, precision):
  if _trained_by_xla(rhs, window_strides):
    return (_time_conv(lhs, rhs, window_strides, padding, dimension_numbers, precision),
            (lhs, rhs, None))
  patches = _patches(lhs, rhs.shape[:2], window_strides, padding)
  kernel = rhs.reshape(-1, rhs.shape[-1])
  return jnp.dot(patches, kernel, precision=precision), (lhs, rhs, patches)


def _time_conv_backward(window_strides, padding, dimension_numbers, precision, residuals,
                        grad):
  del dimension_numbers
  lhs, rhs, patches = residuals
  if patches is None:  # trained by XLA's convolutions (see `_time_conv`)
    (before, after), taps = padding[1], rhs.shape[1]
    flipped = jnp.flip(rhs[0], axis=0).transpose(0, 2, 1)
    grad_lhs = _over_time(grad[:, 0], flipped, 1, (taps - 1 - before, taps - 1 - after),
                          precision)[:, None]
    if rhs.shape[2] >= XLA_KERNEL_GRADIENT_INPUT:
      _, kernel_vjp = jax.vjp(lambda k: _over_time(lhs[:, 0], k, 1, padding[1], precision), rhs[0])
      return grad_lhs, kernel_vjp(grad[:, 0])[0][None]
    patches = _patches(lhs, rhs.shape[:2], window_strides, padding)
    grad_kernel = _kernel_gradient(patches.reshape(-1, patches.shape[-1]),
                                   grad.reshape(-1, rhs.shape[-1]), precision)
    return grad_lhs, grad_kernel.reshape(rhs.shape)
  grad_patches, grad_kernel = _patch_matmul_backward(
      precision, (patches, rhs.reshape(-1, rhs.shape[-1])), grad)
  _, patches_vjp = jax.vjp(lambda x: _patches(x, rhs.shape[:2], window_strides, padding), lhs)
  (grad_lhs,) = patches_vjp(grad_patches)
  return grad_lhs, grad_kernel.reshape(rhs.shape)


_time_conv.defvjp(_time_conv_forward, _time_conv_backward)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _patch_matmul(patches, kernel, precision):
  """patches (..., K) @ kernel (K, N)."""
  return jnp.dot(patches, kernel, precision=precision)


def _patch_matmul_forward(patches, kernel, precision):
  return _patch_matmul(patches, kernel, precision), (patches, kernel)


def _patch_matmul_backward(precision, residuals, grad):
  """The patch and kernel gradients as 2-D dots.

  The kernel gradient contracts the long axis (batch x positions) of both operands.
  Left to itself (autodiff of the dot), XLA has the dot read `grad` transposed and
  fuses grad's producer (BatchNorm's and ReLU's backward) into that transposing
  copy, which runs at a fraction of memory speed (18 ms of ResNet-18's step for one
  64-channel map at 28 px). Behind the barrier, grad is written once in its own
  layout and the dot reads it as it is. Same values as autodiff of the dot.
  """
  patches, kernel = residuals
  grad_patches = jnp.dot(grad, kernel.T, precision=precision)
  grad = lax.optimization_barrier(grad)
  grad_kernel = _kernel_gradient(patches.reshape(-1, kernel.shape[0]),
                                 grad.reshape(-1, kernel.shape[1]), precision)
  return grad_patches, grad_kernel


def _kernel_gradient(patches, grad, precision):
  """patches (M, K) transposed @ grad (M, N): both operands contracted over their long M axis.

  Where the kernel gradient is tall (K >= 2N) and M is long against its size, XLA's CPU
  dot runs this at about half the forward product's speed. There the two halves of M,
  as a batch of two products grad^T @ patches (N, K), summed and transposed, are 1.1-1.8x
  faster; for wide or large kernel gradients they are slower, so those keep the plain
  dot. Both measured on 2 cores by `python -m benchmarks.conv` (the kernel-gradient
  rows), which can re-check the rule on another machine.
  """
  rows, k = patches.shape
  n = grad.shape[1]
  if k < 2 * n or rows < k * n // 16 or rows % 2:
    return jnp.dot(patches.T, grad, precision=precision)
  halves = lax.dot_general(grad.reshape(2, rows // 2, n), patches.reshape(2, rows // 2, k),
                           (((1,), (1,)), ((0,), (0,))), precision=precision)
  return halves.sum(0).T


_patch_matmul.defvjp(_patch_matmul_forward, _patch_matmul_backward)


CONV_IMPLS = {'matmul': conv_via_matmul, 'lax': lax.conv_general_dilated}
