"""Forward + backward time of the operations medjax reformulates for CPUs, against
the operations they replace.

  python -m benchmarks.conv

Convolution: one 3x3 convolution at batch 128, lax.conv against the im2col
formulation (`model.conv_impl`); milliseconds and GFLOP/s (2 * MACs of the
forward pass, times 3 for forward + both gradients). Max pooling: flax's
`nn.max_pool` (reduce-window, select-and-scatter backward) against
`medjax.models.pool.max_pool` (strided-slice maxima). Kernel gradient: the
backward pass's patches^T @ grad of the seed CNN's and ResNet-18's convolutions
(rows M = batch x positions, K = patch width, N = output channels), the plain dot
against medjax's choice (`conv._kernel_gradient`: two half-products where the
gradient is tall and M long). One JSON line per shape.
"""
import json

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from benchmarks.timing import median_seconds
from medjax import host_memory
from medjax.models.conv import CONV_IMPLS, _kernel_gradient
from medjax.models.pool import max_pool

DIMENSIONS = lax.conv_dimension_numbers((1, 1, 1, 1), (1, 1, 1, 1), ('NHWC', 'HWIO', 'NHWC'))
CONV_SHAPES = ((28, 64), (14, 128), (7, 256), (4, 512), (2, 512))
# (batch, size, channels, window): the seed CNN's pools at 28 and 64 px, the ImageNet stem's.
POOL_SHAPES = ((128, 28, 32, 2), (128, 7, 128, 2), (64, 64, 32, 2), (64, 32, 64, 3))
# (M, K, N): the seed CNN's Conv_1 and Conv_2 at 28 px (batch 128) and 64 px (batch 64),
# ResNet-18's 3x3 convolutions at 28 px (stride-2 stem, batch 128), a 1x1 and a wide one.
KERNEL_GRADIENT_SHAPES = ((25088, 288, 64), (6272, 576, 128), (65536, 288, 64),
                          (16384, 576, 128), (25088, 576, 64), (6272, 1152, 128),
                          (2048, 2304, 256), (512, 4608, 512), (25088, 64, 256),
                          (6272, 128, 512))
POOLS = {
    'flax': lambda x, window: nn.max_pool(x, (window,) * 2, strides=(2, 2), padding='SAME'),
    'medjax': lambda x, window: max_pool(x, (window,) * 2, (2, 2)),
}


def milliseconds(loss, *args, repeats=5):
  grad = jax.jit(jax.grad(loss, argnums=tuple(range(len(args)))))
  return 1e3 * median_seconds(lambda: jax.block_until_ready(grad(*args)), repeats)


def main():
  host_memory.reuse_freed_memory()  # as the experiment launcher does
  batch = 128
  for size, channels in CONV_SHAPES:
    x = jnp.ones((batch, size, size, channels))
    w = jnp.full((3, 3, channels, channels), 0.01)
    flops = 3 * 2 * batch * size * size * 9 * channels * channels
    row = {'op': 'conv3x3', 'size': size, 'channels': channels, 'batch': batch}
    for name, conv in CONV_IMPLS.items():
      ms = milliseconds(lambda x, w: jnp.sum(conv(x, w, (1, 1), 'SAME',
                                                  dimension_numbers=DIMENSIONS)**2), x, w)
      row[f'{name}_ms'] = round(ms, 1)
      row[f'{name}_gflops'] = round(flops / ms / 1e6, 1)
    print(json.dumps(row), flush=True)
  for batch, size, channels, window in POOL_SHAPES:
    x = jax.nn.relu(jax.random.normal(jax.random.key(0), (batch, size, size, channels)))
    row = {'op': f'max_pool{window}x{window}/2', 'size': size, 'channels': channels,
           'batch': batch}
    for name, pool in POOLS.items():
      row[f'{name}_ms'] = round(milliseconds(lambda x: jnp.sum(pool(x, window)**2), x), 2)
    print(json.dumps(row), flush=True)
  kernel_gradients = {
      'plain': jax.jit(lambda patches, grad: jnp.dot(patches.T, grad)),
      'medjax': jax.jit(lambda patches, grad: _kernel_gradient(patches, grad, None)),
  }
  for rows, k, n in KERNEL_GRADIENT_SHAPES:
    patches, grad = jnp.full((rows, k), 0.01), jnp.full((rows, n), 0.01)
    row = {'op': 'kernel_gradient', 'rows': rows, 'k': k, 'n': n}
    for name, product in kernel_gradients.items():
      ms = 1e3 * median_seconds(lambda: jax.block_until_ready(product(patches, grad)), 15)
      row[f'{name}_ms'] = round(ms, 2)
    print(json.dumps(row), flush=True)


if __name__ == '__main__':
  main()
