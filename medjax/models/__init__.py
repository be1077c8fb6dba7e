"""Model registry: `build(config.model, task)` returns a Linen module.

The model reads the task's inputs (`model.inputs` names a subset; '' = all): the input
of the modality `model.name`'s encoder reads gets that encoder, every other input its
modality's default encoder (medjax/models/encoders/). Every model maps a batch dict
to float32 logits of shape (batch, task.num_classes) and takes `train=` to switch
dropout and BatchNorm statistics.
"""
import jax
import jax.numpy as jnp

from medjax.config import ConfigError
from medjax.data.task import Task
from medjax.models.conv import CONV_IMPLS
from medjax.models.encoders import DEFAULT_ENCODERS, ENCODERS
from medjax.models.heads import Diagnoser

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}
CONV_CHOICES = ('auto',) + tuple(CONV_IMPLS)


def check_config(model_config) -> None:
  """Refuses a bad model name, dtype or convolution, and bad encoder fields."""
  if model_config.name not in ENCODERS:
    raise ConfigError(f'model.name={model_config.name!r} is not one of {sorted(ENCODERS)}')
  if model_config.dtype not in DTYPES:
    raise ConfigError(f'model.dtype={model_config.dtype!r} is not one of {sorted(DTYPES)}')
  if model_config.conv_impl not in CONV_CHOICES:
    raise ConfigError(f'model.conv_impl={model_config.conv_impl!r} is not one of '
                      f'{CONV_CHOICES}')
  for encoder in ENCODERS.values():
    if hasattr(encoder, 'check_config'):
      encoder.check_config(model_config)


def conv_impl(name: str) -> str:
  """'auto': im2col on CPUs (XLA's CPU convolutions are slow), cuDNN/TPU convolutions
  elsewhere."""
  if name != 'auto':
    return name
  return 'matmul' if jax.default_backend() == 'cpu' else 'lax'


def encoder_names(model_config, task: Task) -> dict[str, str]:
  """Input key -> encoder name, for the inputs the model reads."""
  keys = [k.strip() for k in model_config.inputs.split(',') if k.strip()] or list(task.inputs)
  unknown = sorted(set(keys) - set(task.inputs))
  if unknown:
    raise ConfigError(f'model.inputs: {unknown} are not inputs of {task.name} '
                      f'({sorted(task.inputs)})')
  primary = ENCODERS[model_config.name].MODALITY
  names = {}
  for key in keys:
    modality = task.inputs[key].modality
    reads = primary in (modality, 'any')
    names[key] = model_config.name if reads else DEFAULT_ENCODERS.get(modality)
    if names[key] is None:
      raise ConfigError(f'no encoder reads the {modality} input {key!r}')
  if model_config.name not in names.values():
    raise ConfigError(f'model.name={model_config.name!r} reads {primary} inputs, but the '
                      f'inputs read are {", ".join(f"{k} ({task.inputs[k].modality})" for k in keys)}')
  return names


def build(model_config, task: Task) -> Diagnoser:
  check_config(model_config)
  dtype, impl = DTYPES[model_config.dtype], conv_impl(model_config.conv_impl)
  names = encoder_names(model_config, task)
  encoders = {key: ENCODERS[name].build(model_config, task.inputs[key], dtype=dtype,
                                        conv_impl=impl)
              for key, name in names.items()}
  return Diagnoser(encoders=encoders, num_outputs=task.num_classes,
                   optional_keys=tuple(k for k in names if task.inputs[k].optional),
                   head_zero_init=getattr(ENCODERS[model_config.name], 'HEAD_ZERO_INIT', False),
                   dtype=dtype)
