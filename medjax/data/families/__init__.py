"""Data families, one module each, registered here by the first part of `data.name`.

A family module has:
  CONFIG                         config fragment: dotted field -> default;
  CROSS_VALIDATES (optional)     True where its builder honours `data.cv_folds` and
                                 `data.cv_fold` (validation = one fold of its training data);
  check_config(dataset, data_config)   raises medjax.config.ConfigError for an unknown
                                 data set or a bad field value, before anything is read;
  builder(dataset, data_config, prepared_dir)   its TFDS builder (ArrayRecord files), with
                                 'train', 'val' and 'test' splits; each example has the
                                 task's input keys, 'label' and 'index' (its position);
  describe(builder, data_config) -> Description: what the registry needs for the Task;
  read_inputs(path, task, data_config)   new files -> [(name, {key: array} or an error
                                 string)], in the stored format of the examples
                                 (`--mode=predict`; no data set needed).
"""
import dataclasses
from typing import Mapping

from medjax.data.task import InputSpec


@dataclasses.dataclass(frozen=True)
class Description:
  kind: str
  label_names: tuple[str, ...]
  inputs: Mapping[str, InputSpec]
  group_key: str = ''
  scores: tuple[str, ...] = ()


from medjax.data.families import medmnist, medmnist3d, mitdb, ucr  # noqa: E402  (they use Description)

FAMILIES = {'medmnist': medmnist, 'medmnist3d': medmnist3d, 'ucr': ucr, 'mitdb': mitdb}
