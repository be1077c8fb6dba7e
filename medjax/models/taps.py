"""Named taps on intermediate feature maps, for Grad-CAM.

`tap` is the identity in training and ordinary inference. Applied with the
'intermediates' collection mutable it records the feature map; applied with a
'perturbations' collection it adds that perturbation, whose gradient is the
gradient of the output with respect to the feature map.
"""
import flax.linen as nn


def tap(module: nn.Module, name: str, x):
  x = module.perturb(name, x)
  module.sow('intermediates', name, x)
  return x
