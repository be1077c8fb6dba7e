"""The MedMNIST v2 study (Yang et al. 2023, Table 4) at 28 px on PneumoniaMNIST and
BreastMNIST: ResNet-18 and ResNet-50 (the paper's rows), plus the seed CNN, the ViT
and the classic baseline (`linear`: logistic regression on the pixels, with each data
set's ResNet-18 recipe), 3 seeds each. Each data set's ResNet-18 is the baseline of its comparisons.

The recipes are the repo's configs: on PneumoniaMNIST the ResNets use the 'stride2'
stem (see configs/pneumonia_resnet18.py); on BreastMNIST the ResNet-18 uses MedMNIST's
'cifar' stem (configs/breast_resnet18.py), and `breast/resnet18_stride2` keeps the
stride2 recipe it replaced as a stem ablation. The breast ResNet-50 keeps the stride2
recipe: with the cifar stem it would cost about 4x as much (hours per run on a 2-core
CPU), so it is compared with `breast/resnet18_stride2`. The other models change only the
model fields (and, for the ViT, the optimiser settings of configs/breast_vit.py).

COMMAND: python -m medjax.ablate experiments/medmnist_v2.py --workdir=workdirs/medmnist_v2 \
  --publish=experiments/results/medmnist_v2/runs
(in parts: add --only='*/resnet18', then --only='*/cnn', ...; finished runs are skipped.
On a new machine, first `cp -r experiments/results/medmnist_v2/runs/. workdirs/medmnist_v2/`:
the published runs then count as finished.)
"""
from medjax import config as config_lib
from medjax.sweep import Sweep, Variant

PNEUMONIA = 'configs/pneumonia_resnet18.py'
BREAST_RESNET = 'configs/breast_resnet18.py'
BREAST_STRIDE2 = {'model.resnet.stem': 'stride2', 'train.steps': 800}
VIT_FIELDS = ('model.vit.patch_size', 'model.vit.stem', 'model.vit.width', 'model.vit.depth',
              'model.vit.num_heads', 'model.vit.mlp_dim', 'model.vit.dropout',
              'train.label_smoothing', 'optim.name', 'optim.learning_rate',
              'optim.weight_decay')


def _breast_vit_fields() -> dict:
  """The ViT of configs/breast_vit.py: its model and optimiser fields."""
  from configs import breast_vit
  fields = config_lib.flatten(breast_vit.get_config())
  return {'model.name': 'vit', **{field: fields[field] for field in VIT_FIELDS}}


def get_sweep():
  return Sweep(
      base=PNEUMONIA,
      variants=(
          Variant('pneumonia/resnet18'),
          Variant('pneumonia/resnet50', {'model.resnet.depth': 50}),
          Variant('pneumonia/cnn', {'model.name': 'cnn'}),
          Variant('pneumonia/vit', _breast_vit_fields()),
          Variant('pneumonia/linear', {'model.name': 'linear'}),
          Variant('breast/resnet18', config=BREAST_RESNET),
          Variant('breast/resnet18_stride2', BREAST_STRIDE2, config=BREAST_RESNET),
          Variant('breast/resnet50', {**BREAST_STRIDE2, 'model.resnet.depth': 50},
                  config=BREAST_RESNET, baseline='breast/resnet18_stride2'),
          Variant('breast/cnn', config='configs/breast_cnn.py'),
          Variant('breast/vit', config='configs/breast_vit.py'),
          Variant('breast/linear', {'model.name': 'linear'}, config=BREAST_RESNET),
      ),
      seeds=(0, 1, 2),
      baseline=('pneumonia/resnet18', 'breast/resnet18'),
      reference={
          'pneumonia/resnet18': {'auc': 0.944, 'accuracy': 0.854},
          'pneumonia/resnet50': {'auc': 0.949, 'accuracy': 0.854},
          'breast/resnet18': {'auc': 0.901, 'accuracy': 0.863},
          'breast/resnet50': {'auc': 0.857, 'accuracy': 0.812},
      },
      reference_name='MedMNIST v2 (28 px)')
