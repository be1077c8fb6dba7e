"""The task description every module downstream of the data speaks.

A data set hands the model, the loss and the metrics one frozen `Task`: what
kind of prediction is asked, the label names, how often each label occurs in
the training split, and one `InputSpec` per batch key the models may read
('image', later 'signal', 'tokens', 'tabular'). A multimodal data set simply
has several inputs.
"""
import dataclasses
from typing import Mapping

TASK_KINDS = ('binary', 'multiclass', 'multilabel', 'ordinal')


@dataclasses.dataclass(frozen=True)
class InputSpec:
  """Shape (without the batch axis) and dtype of one batch key."""
  shape: tuple[int, ...]
  dtype: str = 'float32'
  modality: str = 'image'


@dataclasses.dataclass(frozen=True)
class Task:
  name: str
  kind: str
  label_names: tuple[str, ...]
  class_counts: tuple[int, ...]
  inputs: Mapping[str, InputSpec]

  def __post_init__(self):
    if self.kind not in TASK_KINDS:
      raise ValueError(f'task kind {self.kind!r} is not one of {TASK_KINDS}')
    if len(self.class_counts) != len(self.label_names):
      raise ValueError(f'{self.name}: {len(self.class_counts)} class counts for '
                       f'{len(self.label_names)} labels')

  @property
  def num_classes(self) -> int:
    return len(self.label_names)

  @property
  def multilabel(self) -> bool:
    """Independent sigmoid outputs; all other kinds use one softmax."""
    return self.kind == 'multilabel'
