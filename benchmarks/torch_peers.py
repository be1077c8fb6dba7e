"""PyTorch twins of medjax's models, for the side-by-side benchmark only.

Each mirrors the Flax module of the same name layer for layer (the suite asserts
the parameter counts are equal): `SeedCNN` (medjax.models.encoders.cnn), `ResNet` with
the same stems and torchvision's blocks (medjax.models.encoders.resnet), and `ViT` with
pre-norm encoder blocks and the patch or convolutional stem (medjax.models.encoders.vit).
Inputs are NCHW float tensors; `build(model_config, num_classes, channels)`
reads the same config fields as `medjax.models.build`.
"""
import functools

import torch
from torch import nn
from torch.nn import functional as F

from medjax.models.encoders.resnet import STAGE_SIZES


class SeedCNN(nn.Module):

  def __init__(self, num_classes, channels, image_size, features=(32, 64, 128), hidden=512,
               dropout=0.5):
    super().__init__()
    layers, size = [], image_size
    for width in features:
      layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(),
                 nn.MaxPool2d(2, 2, ceil_mode=True)]  # ceil_mode: Flax's 'SAME' pooling
      channels, size = width, -(-size // 2)
    self.features = nn.Sequential(*layers)
    self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels * size * size, hidden), nn.ReLU(),
                              nn.Dropout(dropout), nn.Linear(hidden, num_classes))

  def forward(self, x):
    return self.head(self.features(x))


def _conv_bn(cin, cout, kernel, stride=1, zero_scale=False):
  conv = nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, bias=False)
  norm = nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1)  # torch's 0.1 is Flax's momentum 0.9
  if zero_scale:
    nn.init.zeros_(norm.weight)
  return nn.Sequential(conv, norm)


class _Block(nn.Module):
  """BasicBlock (2 convs) or Bottleneck (1x1, 3x3 strided, 1x1 x4), projected shortcut."""

  def __init__(self, cin, features, stride, bottleneck):
    super().__init__()
    if bottleneck:
      cout = features * 4
      self.body = nn.Sequential(_conv_bn(cin, features, 1), nn.ReLU(),
                                _conv_bn(features, features, 3, stride), nn.ReLU(),
                                _conv_bn(features, cout, 1, zero_scale=True))
    else:
      cout = features
      self.body = nn.Sequential(_conv_bn(cin, features, 3, stride), nn.ReLU(),
                                _conv_bn(features, features, 3, zero_scale=True))
    self.shortcut = (_conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout
                     else nn.Identity())
    self.out_channels = cout

  def forward(self, x):
    return F.relu(self.shortcut(x) + self.body(x))


class ResNet(nn.Module):

  def __init__(self, num_classes, channels, depth=18, width=64, stem='cifar'):
    super().__init__()
    if stem == 'imagenet':
      self.stem = nn.Sequential(_conv_bn(channels, width, 7, 2), nn.ReLU(),
                                nn.MaxPool2d(3, 2, padding=1))
    else:
      self.stem = nn.Sequential(_conv_bn(channels, width, 3, 1 if stem == 'cifar' else 2),
                                nn.ReLU())
    blocks, cin = [], width
    for stage, num_blocks in enumerate(STAGE_SIZES[depth]):
      for index in range(num_blocks):
        block = _Block(cin, width * 2**stage, 2 if stage > 0 and index == 0 else 1,
                       bottleneck=depth >= 50)
        blocks.append(block)
        cin = block.out_channels
    self.blocks = nn.Sequential(*blocks)
    self.head = nn.Linear(cin, num_classes)

  def forward(self, x):
    return self.head(self.blocks(self.stem(x)).mean((2, 3)))


class _ChannelLayerNorm(nn.LayerNorm):
  """LayerNorm over the channels of an NCHW map (Flax's LayerNorm on NHWC)."""

  def forward(self, x):
    return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ViT(nn.Module):

  def __init__(self, num_classes, channels, image_size, patch_size=4, width=192, depth=6,
               num_heads=3, mlp_dim=768, dropout=0.0, stem='patch'):
    super().__init__()
    if stem == 'conv':
      layers, features, p = [], width // patch_size, patch_size
      while p > 1:
        layers += [nn.Conv2d(channels, features, 3, 2, padding=1), _ChannelLayerNorm(features),
                   nn.ReLU()]
        channels, features, p = features, features * 2, p // 2
      self.embed = nn.Sequential(*layers, nn.Conv2d(channels, width, 1))
    else:
      self.embed = nn.Conv2d(channels, width, patch_size, patch_size)
    tokens = (image_size // patch_size)**2 + 1
    self.cls = nn.Parameter(torch.zeros(1, 1, width))
    self.pos = nn.Parameter(torch.randn(1, tokens, width) * 0.02)
    layer = nn.TransformerEncoderLayer(
        width, num_heads, mlp_dim, dropout, batch_first=True, norm_first=True,
        activation=functools.partial(F.gelu, approximate='tanh'))  # Flax's nn.gelu
    self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
    self.norm = nn.LayerNorm(width)
    self.head = nn.Linear(width, num_classes)

  def forward(self, x):
    x = self.embed(x).flatten(2).transpose(1, 2)
    x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
    return self.head(self.norm(self.encoder(x)[:, 0]))


def build(model_config, num_classes: int, channels: int, image_size: int) -> nn.Module:
  if model_config.name == 'cnn':
    return SeedCNN(num_classes, channels, image_size, dropout=model_config.cnn.dropout)
  if model_config.name == 'resnet':
    cfg = model_config.resnet
    return ResNet(num_classes, channels, cfg.depth, cfg.width, cfg.stem)
  if model_config.name == 'vit':
    cfg = model_config.vit
    return ViT(num_classes, channels, image_size, cfg.patch_size, cfg.width, cfg.depth,
               cfg.num_heads, cfg.mlp_dim, cfg.dropout, cfg.stem)
  raise ValueError(f'no PyTorch peer for model.name={model_config.name!r}')


def param_count(module: nn.Module) -> int:
  return sum(p.numel() for p in module.parameters())
