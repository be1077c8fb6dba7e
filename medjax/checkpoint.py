"""Checkpoints: the only module that imports orbax.

A run keeps two folders in its workdir:
  * `checkpoints/`: the latest `train.checkpoints_to_keep` steps, for resuming;
  * `best/`: the single step with the best validation metric, for evaluation.
Each checkpoint holds the train state and a JSON `meta` item (the data
iterator state, the best metric so far, ...). Orbax writes to a temporary
folder and renames it when complete, so a crash never leaves a half checkpoint
that looks finished; a checkpoint damaged later (a truncated file, a bad disk)
is detected on restore, moved aside and the previous one used instead.
"""
import pathlib
import shutil

import jax
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils


class Checkpoints:
  """One orbax CheckpointManager over a folder of (state, meta) checkpoints."""

  def __init__(self, directory, *, max_to_keep: int = 1, best_metric: str | None = None,
               read_only: bool = False):
    # Read-only: the saving options Orbax would reset (with a warning each) left unset.
    options = ocp.CheckpointManagerOptions(
        max_to_keep=None if read_only else max_to_keep, create=not read_only,
        save_interval_steps=0 if read_only else 1, read_only=read_only,
        best_fn=(lambda metrics: metrics[best_metric]) if best_metric else None,
        best_mode='max')
    self._directory = pathlib.Path(directory).absolute()
    # Orbax announces every read-only manager with a warning: expected here, not shown.
    verbosity = logging.get_verbosity()
    if read_only:
      logging.set_verbosity(logging.ERROR)
    try:
      self._manager = ocp.CheckpointManager(self._directory, options=options,
                                            item_names=('state', 'meta'))
    finally:
      logging.set_verbosity(verbosity)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state, meta: dict, metrics: dict | None = None):
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), metrics=metrics)
    if jax.process_count() > 1:
      # Across processes, two managers' background saves contend for orbax's
      # barriers (seen as a 'barrier already ongoing' abort): finish each save first.
      self._manager.wait_until_finished()

  def restore(self, step: int, abstract_state):
    """Restores (state, meta) at `step`, placed like `abstract_state` (shapes and shardings)."""
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
    return restored.state, restored.meta

  def restore_newest_readable(self, abstract_state, quarantine_dir):
    """(step, state, meta) of the newest checkpoint that restores, or None if none does.

    Unreadable newer ones are reported and moved into `quarantine_dir` (so that
    training can write that step again).
    """
    for step in sorted(self.all_steps(), reverse=True):
      try:
        return (step, *self.restore(step, abstract_state))
      except Exception as error:  # noqa: BLE001  (orbax, tensorstore and JSON errors alike)
        target = pathlib.Path(quarantine_dir) / str(step)
        logging.warning('checkpoint %d in %s is unreadable (%s: %s); moved to %s and falling '
                        'back to the previous one', step, self._directory, type(error).__name__,
                        str(error).splitlines()[0][:200] if str(error) else '', target)
        if jax.process_index() == 0:
          target.parent.mkdir(parents=True, exist_ok=True)
          shutil.rmtree(target, ignore_errors=True)
          shutil.move(self._directory / str(step), target)
        if jax.process_count() > 1:
          multihost_utils.sync_global_devices(f'medjax checkpoint {step} moved aside')
        self._manager.reload()
    return None

  def wait(self):
    self._manager.wait_until_finished()

  def close(self):
    self._manager.close()


def abstract_like(tree, shardings):
  """ShapeDtypeStructs placed by `shardings` (a tree like `tree`): the restore target."""
  return jax.tree.map(lambda x, sharding: jax.ShapeDtypeStruct(x.shape, x.dtype,
                                                               sharding=sharding),
                      tree, shardings)
