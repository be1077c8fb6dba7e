"""Forward + backward throughput of one 3x3 convolution: lax.conv against the
im2col formulation medjax uses on CPUs (`model.conv_impl`).

  python -m benchmarks.conv

Prints one JSON line per (spatial size, channels) at batch 128: milliseconds and
GFLOP/s (2 * MACs of the forward pass, times 3 for forward + both gradients).
"""
import json
import statistics
import time

import jax
import jax.numpy as jnp
from jax import lax

from medjax.models.conv import CONV_IMPLS

DIMENSIONS = lax.conv_dimension_numbers((1, 1, 1, 1), (1, 1, 1, 1), ('NHWC', 'HWIO', 'NHWC'))
SHAPES = ((28, 64), (14, 128), (7, 256), (4, 512), (2, 512))


def milliseconds(conv, x, w, repeats=5):
  grad = jax.jit(jax.grad(lambda x, w: jnp.sum(conv(x, w, (1, 1), 'SAME',
                                                     dimension_numbers=DIMENSIONS)**2),
                          argnums=(0, 1)))
  jax.block_until_ready(grad(x, w))
  times = []
  for _ in range(repeats):
    started = time.perf_counter()
    jax.block_until_ready(grad(x, w))
    times.append(time.perf_counter() - started)
  return statistics.median(times) * 1e3


def main():
  batch = 128
  for size, channels in SHAPES:
    x = jnp.ones((batch, size, size, channels))
    w = jnp.full((3, 3, channels, channels), 0.01)
    flops = 3 * 2 * batch * size * size * 9 * channels * channels
    row = {'size': size, 'channels': channels, 'batch': batch}
    for name, conv in CONV_IMPLS.items():
      ms = milliseconds(conv, x, w)
      row[f'{name}_ms'] = round(ms, 1)
      row[f'{name}_gflops'] = round(flops / ms / 1e6, 1)
    print(json.dumps(row))


if __name__ == '__main__':
  main()
