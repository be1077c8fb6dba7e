"""What training optimises and how checkpoints are chosen, per task kind.

`train.select_metric` names the validation metric of the best checkpoint (and of
the sweep tables); '' takes the task kind's default: ROC AUC for binary, ordinal
and multi-label tasks (MedMNIST's model selection), accuracy for multi-class tasks,
and a task's own challenge score where it has one (AAMI beats: the jκ index).
"""
import math

from medjax.config import ConfigError
from medjax.data.task import Task

DEFAULT_SELECT = {'binary': 'auc', 'ordinal': 'auc', 'multilabel': 'auc',
                  'multiclass': 'accuracy'}
LOWER_IS_BETTER = ('loss', 'brier', 'ece')


def select_metric(task: Task, configured: str, available) -> str:
  """The selection metric's name; ConfigError where the validation metrics lack it."""
  from medjax import scores
  name = configured or scores.default_select_metric(task) or DEFAULT_SELECT[task.kind]
  if name not in available:
    raise ConfigError(f'train.select_metric={name!r} is not a validation metric of '
                      f'{task.name}: {sorted(available)}')
  return name


def improves(name: str, value: float, best: float | None) -> bool:
  """Whether `value` of metric `name` beats `best` (None or NaN: nothing yet)."""
  if best is None or (isinstance(best, float) and math.isnan(best)):
    return True
  if math.isnan(value):
    return False
  return value < best if name in LOWER_IS_BETTER else value > best
