"""The device mesh, how arrays are placed on it, and multi-host start-up.

The mesh has two axes, `data` and `fsdp`. Batches are split over both (every
device gets a different slice of the global batch). The train state is either
replicated (`mesh.fsdp = 1`: data parallel) or sharded along `fsdp`: each array
of at least `mesh.fsdp_min_size` elements is split on its largest axis that the
`fsdp` size divides, smaller ones are replicated. The rule looks only at shapes,
so optimiser moments are sharded exactly like their parameters. XLA inserts the
all-gathers and reduce-scatters. The same jit-compiled step runs on 1 device or
N, and on several hosts, where each process contributes its local part of the
global batch.
"""
import os

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from medjax.config import ConfigError

DATA_AXIS = 'data'
FSDP_AXIS = 'fsdp'
BATCH_AXES = (DATA_AXIS, FSDP_AXIS)


def initialize_distributed():
  """Joins a multi-process job (`jax.distributed.initialize`).

  On SLURM, Open MPI, Kubernetes and Cloud TPU the coordinator, process count and
  id are detected. Elsewhere set JAX_COORDINATOR_ADDRESS (host:port of process 0),
  JAX_NUM_PROCESSES and JAX_PROCESS_ID. On CPUs the processes talk over gloo.
  """
  count, index = os.environ.get('JAX_NUM_PROCESSES'), os.environ.get('JAX_PROCESS_ID')
  jax.distributed.initialize(num_processes=int(count) if count else None,
                             process_id=int(index) if index else None)


def make_mesh(mesh_config) -> Mesh:
  """A (data, fsdp) mesh; `mesh.data = -1` takes every device the fsdp axis leaves."""
  devices = jax.devices()
  fsdp = mesh_config.fsdp
  if fsdp < 1 or len(devices) % fsdp:
    raise ConfigError(f'mesh.fsdp={fsdp} must divide the {len(devices)} devices of this job')
  data = len(devices) // fsdp if mesh_config.data == -1 else mesh_config.data
  if data < 1 or data * fsdp > len(devices):
    raise ConfigError(f'mesh.data={mesh_config.data} x mesh.fsdp={fsdp} needs more than the '
                      f'{len(devices)} devices of this job')
  return Mesh(np.array(devices[:data * fsdp]).reshape(data, fsdp), BATCH_AXES)


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def array_spec(shape, fsdp_size: int, min_size: int) -> PartitionSpec:
  """Where one array lives: split along `fsdp` on its largest divisible axis, or replicated."""
  if fsdp_size == 1 or int(np.prod(shape, dtype=np.int64)) < min_size:
    return PartitionSpec()
  for axis in sorted(range(len(shape)), key=lambda a: -shape[a]):
    if shape[axis] % fsdp_size == 0:
      return PartitionSpec(*([None] * axis + [FSDP_AXIS]))
  return PartitionSpec()


def state_shardings(abstract_state, mesh: Mesh, min_size: int):
  """The sharding of every array of the train state (a tree like `abstract_state`)."""
  fsdp_size = mesh.shape[FSDP_AXIS]
  return jax.tree.map(
      lambda x: NamedSharding(mesh, array_spec(x.shape, fsdp_size, min_size)), abstract_state)


def local_batch_size(global_batch_size: int, mesh: Mesh) -> int:
  """This process's share of a global batch; the global batch must split evenly."""
  devices = mesh.devices.size
  if global_batch_size % devices:
    raise ValueError(f'batch size {global_batch_size} is not divisible by the {devices} '
                     'devices of the mesh')
  return global_batch_size // jax.process_count()


def to_global(local_batch, mesh: Mesh):
  """Places this process's numpy batch as its part of a global, batch-sharded array."""
  sharding = batch_sharding(mesh)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x),
                      local_batch)


def to_host(tree):
  """Fetches (possibly multi-host) global arrays as numpy arrays on every process."""
  if jax.process_count() == 1:
    return jax.tree.map(np.asarray, tree)
  return multihost_utils.process_allgather(tree, tiled=True)
