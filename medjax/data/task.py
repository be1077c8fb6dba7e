"""The task description every module downstream of the data speaks.

A data set hands the model, the loss and the metrics one frozen `Task`: what
kind of prediction is asked (per example or per time step), the label names, how
often each label occurs in the training split, and one `InputSpec` per batch key
the models may read. A multimodal data set simply has several inputs; an input
that may be absent for an example comes with a `<key>_present` flag in the batch,
so shapes stay fixed under `jit`.

The task is stored as `task.json` in every workdir: evaluation and prediction
rebuild the model, its preprocessing and its scores from it, without the data set.
"""
import dataclasses
import json
from typing import Mapping

TASK_KINDS = ('binary', 'multiclass', 'multilabel', 'ordinal')
LABEL_LEVELS = ('example', 'step')
MODALITIES = ('image', 'signal', 'series', 'tokens', 'tabular')


@dataclasses.dataclass(frozen=True)
class InputSpec:
  """One batch key: its modality and shape without the batch axis.

  image: (H, W, C), or (D, H, W, C) for a volume; signal: (length, channels) with
  `sampling_rate` in Hz; series: (steps, variables), with an observation mask; tokens:
  (max length,) with `vocab_size`; tabular: (features,) with `feature_names`. `mean` and
  `std` are per-channel statistics of the training split that the pipeline standardises
  with (empty: the modality's fixed scaling).
  """
  modality: str
  shape: tuple[int, ...]
  dtype: str = 'float32'
  sampling_rate: float = 0.0
  vocab_size: int = 0
  feature_names: tuple[str, ...] = ()
  mean: tuple[float, ...] = ()
  std: tuple[float, ...] = ()
  optional: bool = False  # may be absent: the batch then carries '<key>_present'

  def __post_init__(self):
    if self.modality not in MODALITIES:
      raise ValueError(f'input modality {self.modality!r} is not one of {MODALITIES}')


@dataclasses.dataclass(frozen=True)
class Task:
  name: str
  kind: str
  label_names: tuple[str, ...]
  class_counts: tuple[int, ...]
  inputs: Mapping[str, InputSpec]
  label_level: str = 'example'
  # The example feature naming the patient or record: intervals then resample these
  # groups, not single examples ('' = examples are independent).
  group_key: str = ''
  # Scores of the field (medjax/scores.py) computed beside the standard report.
  scores: tuple[str, ...] = ()

  def __post_init__(self):
    if self.kind not in TASK_KINDS:
      raise ValueError(f'task kind {self.kind!r} is not one of {TASK_KINDS}')
    if self.label_level not in LABEL_LEVELS:
      raise ValueError(f'label level {self.label_level!r} is not one of {LABEL_LEVELS}')
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

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + '\n'

  @classmethod
  def from_json(cls, text: str) -> 'Task':
    fields = json.loads(text)
    inputs = {key: InputSpec(**{name: tuple(value) if isinstance(value, list) else value
                                for name, value in spec.items()})
              for key, spec in fields.pop('inputs').items()}
    return cls(inputs=inputs, **{name: tuple(value) if isinstance(value, list) else value
                                 for name, value in fields.items()})
