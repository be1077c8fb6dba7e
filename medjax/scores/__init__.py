"""Scores of the field, reported beside the standard metrics where a task names them
(`Task.scores`), one module each:

  HEADLINES                     names of its values in the validation metrics;
  SELECT                        the validation metric that chooses checkpoints by default;
  headline(labels, probs)       {name: value} (cheap: computed at every validation);
  report(labels, probs, groups, eval_config)   the full section of metrics.json, with
                                intervals from a bootstrap over `groups` (patients).
"""
from medjax.scores import aami

SCORES = {'aami': aami}


def headline_names(task) -> tuple[str, ...]:
  return tuple(name for score in task.scores for name in SCORES[score].HEADLINES)


def headlines(task, labels, probs) -> dict:
  return {name: value for score in task.scores
          for name, value in SCORES[score].headline(labels, probs).items()}


def default_select_metric(task) -> str:
  return next((SCORES[score].SELECT for score in task.scores), '')


def reports(task, labels, probs, groups, eval_config) -> dict:
  return {score: SCORES[score].report(labels, probs, groups, eval_config)
          for score in task.scores}
