"""Mixed precision: ResNet-18 on PneumoniaMNIST (configs/pneumonia_resnet18.py)
trained in float32 and with bfloat16 compute (float32 parameters and optimiser
state), same seed, so the two runs see the same initial weights and batches.

COMMAND: python -m medjax.ablate experiments/precision.py --workdir=workdirs/precision
"""
from medjax.sweep import Sweep, Variant


def get_sweep():
  return Sweep(
      base='configs/pneumonia_resnet18.py',
      variants=(Variant('float32'), Variant('bfloat16', {'model.dtype': 'bfloat16'})),
      seeds=(0,),
      baseline='float32')
