"""The registries that contribute config fields: data families, modalities, encoders.

Each registered module's `CONFIG` maps dotted field names to defaults; they are added
to the core schema of configs/common.py, so adding a family or an encoder touches
its own file and its registry line, not the core schema.
"""
import ml_collections


def fragment_modules() -> list:
  from medjax.data.families import FAMILIES
  from medjax.data.modalities import MODALITIES
  from medjax.models.encoders import ENCODERS
  return [*FAMILIES.values(), *MODALITIES.values(), *ENCODERS.values()]


def add_fragments(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  for module in fragment_modules():
    for dotted, default in module.CONFIG.items():
      *parents, leaf = dotted.split('.')
      node = config
      for name in parents:
        if name not in node:
          node[name] = ml_collections.ConfigDict()
        node = node[name]
      if leaf in node:
        raise ValueError(f'{module.__name__} redefines config field {dotted!r}')
      node[leaf] = default
  return config
