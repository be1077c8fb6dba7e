"""PyTorch twins of medjax's models, for the side-by-side benchmark only.

As in `medjax.models`, a model is one encoder per input key and a `Diagnoser` joining
their embeddings in one linear head. Each encoder mirrors the Flax module of the same
name layer for layer (benchmarks/peer.py asserts the parameter counts are equal):
`SeedCNN` (medjax.models.encoders.cnn), `ResNet` with the same stems and
torchvision's blocks (encoders.resnet), `ViT` with pre-norm encoder blocks and the
patch or convolutional stem (encoders.vit), `ResNet1D`, `InceptionTime` and
`SignalTransformer` (encoders of the same names; 1-D convolutions 'same' padded as
XLA's 'SAME') and the tabular `MLP`. Images are NCHW, signals (batch, channels,
time). `build(model_config, task)` reads the same config fields as
`medjax.models.build`.
"""
import functools

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from medjax import models
from medjax.models.encoders.inception_time import RESIDUAL_EVERY as INCEPTION_RESIDUAL_EVERY
from medjax.models.encoders.resnet import STAGE_SIZES
from medjax.models.encoders.resnet1d import KERNELS as RESNET1D_KERNELS
from medjax.models.encoders.resnet1d import WIDTHS as RESNET1D_WIDTHS


class SeedCNN(nn.Module):

  def __init__(self, channels, image_size, features=(32, 64, 128), hidden=512,
               dropout=0.5):
    super().__init__()
    layers, size = [], image_size
    for width in features:
      layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(),
                 nn.MaxPool2d(2, 2, ceil_mode=True)]  # ceil_mode: Flax's 'SAME' pooling
      channels, size = width, -(-size // 2)
    self.features = nn.Sequential(*layers)
    self.dense = nn.Sequential(nn.Flatten(), nn.Linear(channels * size * size, hidden), nn.ReLU(),
                               nn.Dropout(dropout))

  def forward(self, x):
    return self.dense(self.features(x))


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

  def __init__(self, channels, depth=18, width=64, stem='cifar'):
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

  def forward(self, x):
    return self.blocks(self.stem(x)).mean((2, 3))


class _ChannelLayerNorm(nn.LayerNorm):
  """LayerNorm over the channels of an NCHW map (Flax's LayerNorm on NHWC)."""

  def forward(self, x):
    return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class _TokenEncoder(nn.Module):
  """medjax.models.encoders.vit.encode_tokens: class token, position embeddings,
  pre-norm blocks, the normalised class token."""

  def __init__(self, tokens, width, depth, num_heads, mlp_dim, dropout):
    super().__init__()
    self.cls = nn.Parameter(torch.zeros(1, 1, width))
    self.pos = nn.Parameter(torch.randn(1, tokens + 1, width) * 0.02)
    layer = nn.TransformerEncoderLayer(
        width, num_heads, mlp_dim, dropout, batch_first=True, norm_first=True,
        activation=functools.partial(F.gelu, approximate='tanh'))  # Flax's nn.gelu
    self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
    self.norm = nn.LayerNorm(width)

  def forward(self, x):  # (batch, tokens, width)
    x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
    return self.norm(self.encoder(x)[:, 0])


class ViT(nn.Module):

  def __init__(self, channels, image_size, patch_size=4, width=192, depth=6, num_heads=3,
               mlp_dim=768, dropout=0.0, stem='patch'):
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
    self.tokens = _TokenEncoder((image_size // patch_size)**2, width, depth, num_heads, mlp_dim,
                                dropout)

  def forward(self, x):
    return self.tokens(self.embed(x).flatten(2).transpose(1, 2))


def _conv1d_bn(cin, cout, kernel):
  return nn.Sequential(nn.Conv1d(cin, cout, kernel, padding='same', bias=False),
                       nn.BatchNorm1d(cout, eps=1e-5, momentum=0.1))


class ResNet1D(nn.Module):
  """Three blocks of kernel 8, 5, 3 convolutions; the shortcut always normalised."""

  def __init__(self, channels, width=64):
    super().__init__()
    self.blocks = nn.ModuleList()
    for multiple in RESNET1D_WIDTHS:
      features = width * multiple
      body = []
      for position, kernel in enumerate(RESNET1D_KERNELS):
        body += [_conv1d_bn(channels if position == 0 else features, features, kernel)]
        if position < len(RESNET1D_KERNELS) - 1:
          body.append(nn.ReLU())
      shortcut = (nn.BatchNorm1d(features) if channels == features
                  else _conv1d_bn(channels, features, 1))
      self.blocks.append(nn.ModuleList([nn.Sequential(*body), shortcut]))
      channels = features

  def forward(self, x):
    for body, shortcut in self.blocks:
      x = F.relu(shortcut(x) + body(x))
    return x.mean(2)


class _InceptionModule(nn.Module):

  def __init__(self, channels, filters, kernel_size, bottleneck):
    super().__init__()
    self.bottleneck = (nn.Conv1d(channels, bottleneck, 1, bias=False) if channels > 1
                       else nn.Identity())
    width = bottleneck if channels > 1 else channels
    kernels = [max(kernel_size // 2**i, 2) - 1 for i in range(3)]
    self.branches = nn.ModuleList(nn.Conv1d(width, filters, k, padding='same', bias=False)
                                  for k in kernels)
    self.pool = nn.Sequential(nn.MaxPool1d(3, 1, padding=1),
                              nn.Conv1d(channels, filters, 1, bias=False))
    self.norm = nn.BatchNorm1d(4 * filters)

  def forward(self, x):
    y = self.bottleneck(x)
    return F.relu(self.norm(torch.cat([b(y) for b in self.branches] + [self.pool(x)], 1)))


class InceptionTime(nn.Module):

  def __init__(self, channels, depth=6, filters=32, kernel_size=40, bottleneck=32):
    super().__init__()
    self.modules_ = nn.ModuleList()
    self.shortcuts = nn.ModuleDict()
    residual_channels = channels
    for index in range(depth):
      self.modules_.append(_InceptionModule(channels, filters, kernel_size, bottleneck))
      channels = 4 * filters
      if index % INCEPTION_RESIDUAL_EVERY == INCEPTION_RESIDUAL_EVERY - 1:
        self.shortcuts[str(index)] = _conv1d_bn(residual_channels, channels, 1)
        residual_channels = channels

  def forward(self, x):
    residual = x
    for index, module in enumerate(self.modules_):
      x = module(x)
      if str(index) in self.shortcuts:
        x = residual = F.relu(x + self.shortcuts[str(index)](residual))
    return x.mean(2)


class SignalTransformer(nn.Module):

  def __init__(self, channels, length, patch_size=16, width=64, depth=3, num_heads=4,
               mlp_dim=128, dropout=0.1):
    super().__init__()
    self.patch_size = patch_size
    self.embed = nn.Conv1d(channels, width, patch_size, patch_size)
    self.tokens = _TokenEncoder(-(-length // patch_size), width, depth, num_heads, mlp_dim,
                                dropout)

  def forward(self, x):
    x = F.pad(x, (0, -x.shape[2] % self.patch_size))
    return self.tokens(self.embed(x).transpose(1, 2))


class MLP(nn.Module):

  def __init__(self, features, hidden=64, layers=2, dropout=0.0):
    super().__init__()
    stack = []
    for _ in range(layers):
      stack += [nn.Linear(features, hidden), nn.ReLU(), nn.Dropout(dropout)]
      features = hidden
    self.stack = nn.Sequential(*stack)

  def forward(self, x):
    return self.stack(x)


class Diagnoser(nn.Module):
  """One encoder per input key, embeddings concatenated, one linear head
  (medjax.models.heads.Diagnoser, without optional inputs)."""

  def __init__(self, encoders: dict, example: dict, num_classes: int):
    super().__init__()
    self.encoders = nn.ModuleDict(encoders)
    with torch.no_grad():
      features = sum(encoder.eval()(example[key][:2]).shape[-1]
                     for key, encoder in self.encoders.items())
    self.head = nn.Linear(features, num_classes)

  def forward(self, inputs: dict):
    return self.head(torch.cat([encoder(inputs[key]) for key, encoder in self.encoders.items()],
                               -1))


def _encoder(model_config, name: str, shape: tuple) -> nn.Module:
  """The twin of encoder `name` for one input of `shape` (medjax's layout)."""
  if name == 'cnn':
    return SeedCNN(shape[-1], shape[0], dropout=model_config.cnn.dropout)
  if name == 'resnet':
    cfg = model_config.resnet
    return ResNet(shape[-1], cfg.depth, cfg.width, cfg.stem)
  if name == 'vit':
    cfg = model_config.vit
    return ViT(shape[-1], shape[0], cfg.patch_size, cfg.width, cfg.depth, cfg.num_heads,
               cfg.mlp_dim, cfg.dropout, cfg.stem)
  if name == 'resnet1d':
    return ResNet1D(shape[-1], model_config.resnet1d.width)
  if name == 'inception_time':
    cfg = model_config.inception_time
    return InceptionTime(shape[-1], cfg.depth, cfg.filters, cfg.kernel_size, cfg.bottleneck)
  if name == 'signal_transformer':
    cfg = model_config.signal_transformer
    return SignalTransformer(shape[-1], shape[0], cfg.patch_size, cfg.width, cfg.depth,
                             cfg.num_heads, cfg.mlp_dim, cfg.dropout)
  if name == 'mlp':
    cfg = model_config.mlp
    return MLP(shape[-1], cfg.hidden, cfg.layers, cfg.dropout)
  raise ValueError(f'no PyTorch peer for encoder {name!r}')


def to_torch(value) -> torch.Tensor:
  """A medjax batch array as the twin reads it: images NHWC -> NCHW, signals
  (batch, time, channels) -> (batch, channels, time)."""
  tensor = torch.from_numpy(value)
  if tensor.ndim == 4:
    return tensor.permute(0, 3, 1, 2).contiguous()
  if tensor.ndim == 3:
    return tensor.transpose(1, 2).contiguous()
  return tensor


def build(model_config, task) -> Diagnoser:
  """The twin of `medjax.models.build(model_config, task)`."""
  names = models.encoder_names(model_config, task)
  example = {key: to_torch(np.zeros((2, *task.inputs[key].shape), np.float32))
             for key in names}
  encoders = {key: _encoder(model_config, name, task.inputs[key].shape)
              for key, name in names.items()}
  return Diagnoser(encoders, example, task.num_classes)


def param_count(module: nn.Module) -> int:
  return sum(p.numel() for p in module.parameters())
