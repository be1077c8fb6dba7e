"""Checkpoints: the only module that imports orbax.

A run keeps two folders in its workdir:
  * `checkpoints/`: the latest `train.checkpoints_to_keep` steps, for resuming;
  * `best/`: the single step with the best validation metric, for evaluation.
Each checkpoint holds the train state and a JSON `meta` item (the data
iterator state, the best metric so far, ...). Orbax writes to a temporary
folder and renames it when complete, so a crash never leaves a half checkpoint
that looks finished.
"""
import pathlib

import jax
import orbax.checkpoint as ocp


class Checkpoints:
  """One orbax CheckpointManager over a folder of (state, meta) checkpoints."""

  def __init__(self, directory, *, max_to_keep: int = 1, best_metric: str | None = None,
               read_only: bool = False):
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=not read_only, read_only=read_only,
        best_fn=(lambda metrics: metrics[best_metric]) if best_metric else None,
        best_mode='max')
    self._manager = ocp.CheckpointManager(pathlib.Path(directory).absolute(), options=options,
                                          item_names=('state', 'meta'))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state, meta: dict, metrics: dict | None = None):
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), metrics=metrics)

  def restore(self, step: int, abstract_state):
    """Restores (state, meta) at `step`, placed like `abstract_state` (shapes and shardings)."""
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
    return restored.state, restored.meta

  def wait(self):
    self._manager.wait_until_finished()

  def close(self):
    self._manager.close()


def abstract_like(tree, sharding):
  """ShapeDtypeStructs with `sharding`, the restore target for `tree`."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)
