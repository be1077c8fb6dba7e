"""Encoders, one module each, registered here by the name `model.name` gives.

An encoder module has:
  MODALITY                 the input modality it reads ('image', 'signal', 'tabular', ...;
                           'any': every input the model reads);
  CONFIG                   config fragment: dotted field -> default (its `model.<name>` section);
  build(model_config, spec, *, dtype, conv_impl) -> a Linen module (x, *, train) -> (B, D);
and optionally check_config(model_config) (bad values -> ConfigError), GRAD_CAM_LAYER
(its default tap) and HEAD_ZERO_INIT (the head's kernel starts at zero).
"""
from medjax.models.encoders import (cnn, inception_time, linear, mlp, resnet, resnet1d,
                                    rocket, signal_transformer, vit)

ENCODERS = {'cnn': cnn, 'resnet': resnet, 'vit': vit, 'resnet1d': resnet1d,
            'inception_time': inception_time, 'signal_transformer': signal_transformer,
            'mlp': mlp, 'linear': linear, 'rocket': rocket}
# The encoder of an input whose modality `model.name` does not read.
DEFAULT_ENCODERS = {'image': 'cnn', 'signal': 'resnet1d', 'tabular': 'mlp'}
