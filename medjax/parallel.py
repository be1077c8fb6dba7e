"""The device mesh and how arrays are placed on it.

Batches are split along the `data` axis; the train state is replicated. The
same jit-compiled step runs on 1 device or N, and on several hosts, where each
process contributes its local part of the global batch.
"""
import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = 'data'


def make_mesh(mesh_config) -> Mesh:
  devices = jax.devices()
  size = len(devices) if mesh_config.data == -1 else mesh_config.data
  if not 1 <= size <= len(devices):
    raise ValueError(f'mesh.data={mesh_config.data}: this job has {len(devices)} devices')
  return Mesh(np.array(devices[:size]), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def local_batch_size(global_batch_size: int, mesh: Mesh) -> int:
  """This process's share of a global batch; the global batch must split evenly."""
  data_size = mesh.shape[DATA_AXIS]
  if global_batch_size % data_size:
    raise ValueError(f'batch size {global_batch_size} is not divisible by the {data_size} '
                     'devices of the data axis')
  return global_batch_size // jax.process_count()


def to_global(local_batch, mesh: Mesh):
  """Places this process's numpy batch as its part of a global, data-sharded batch."""
  sharding = batch_sharding(mesh)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x),
                      local_batch)


def to_host(tree):
  """Fetches (possibly multi-host) global arrays as numpy arrays on every process."""
  if jax.process_count() == 1:
    return jax.tree.map(np.asarray, tree)
  return multihost_utils.process_allgather(tree, tiled=True)
