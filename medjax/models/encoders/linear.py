"""The classic baseline: a linear model of the flattened inputs. With the diagnoser's
linear head it is multinomial (or, multi-label, per-label) logistic regression on an
image's pixels, a signal's standardised samples and tabular features alike, trained by
the same loop and reported by the same evaluation as the deep models beside it;
`optim.name='adamw'` with `optim.weight_decay` is its L2 penalty.

It reads every input of the task (MODALITY 'any'), so an ECG beat and its RR
intervals enter one linear model, as in de Chazal et al.'s (2004) linear discriminants.
"""
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

MODALITY = 'any'
CONFIG = {}
HEAD_ZERO_INIT = True  # logistic regression starts from all-zero weights


class Flatten(nn.Module):
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, *, train: bool):
    return x.reshape((x.shape[0], -1)).astype(self.dtype)


def build(model_config, spec, *, dtype, conv_impl) -> Flatten:
  return Flatten(dtype=dtype)
