"""Where one train step's time goes: a jax.profiler trace of medjax's real step.

  python -m benchmarks.profile_step --model=cnn --size=28 --trace_dir=/tmp/medjax-trace

The step is the one `benchmarks.peer` times (same model, size and batch). Writes
the trace of `--traced_steps` steps to `--trace_dir` (open it with XProf or TensorBoard's
profile plugin); where `xprof` is installed (`pip install xprof`, not a medjax
dependency) it also prints the XLA operations that took the most time per step.
"""
import collections
import glob
import json
import os
import re

import jax
from absl import app, flags

from benchmarks import peer
from medjax import host_memory

_MODEL = flags.DEFINE_enum('model', 'cnn', sorted(peer.MODELS), 'model to profile')
_SIZE = flags.DEFINE_integer('size', 28, 'image size')
_STEPS = flags.DEFINE_integer('traced_steps', 5, 'traced steps (after 3 untraced ones)')
_TRACE_DIR = flags.DEFINE_string('trace_dir', '/tmp/medjax-trace', 'where the trace goes')
_TOP = flags.DEFINE_integer('top', 25, 'operations to print')
# Host-side frames of the trace (Python, the runtime's executor), not XLA operations.
_HOST_FRAMES = ('$', 'Thunk', 'Threadpool', 'Pjit')


def top_operations(trace_dir: str, steps: int, top: int) -> list[tuple[str, float, int]]:
  """(operation, milliseconds per step, calls per step), most expensive first."""
  from xprof.convert import raw_to_tool_data  # optional: only for the summary
  path = sorted(glob.glob(os.path.join(trace_dir, 'plugins/profile/*/*.xplane.pb')))[-1]
  data, _ = raw_to_tool_data.xspace_to_tool_data([path], 'trace_viewer', {})
  events = json.loads(data)['traceEvents']
  total, calls = collections.Counter(), collections.Counter()
  for event in events:
    name = event.get('name', '')
    if event.get('ph') == 'X' and not name.startswith(_HOST_FRAMES):
      total[name] += event['dur'] / 1e3
      calls[name] += 1
  return [(name, ms / steps, calls[name] // steps) for name, ms in total.most_common(top)]


def source_ops(hlo_text: str) -> dict[str, str]:
  """HLO instruction name -> the JAX operation it came from (its op_name metadata)."""
  return dict(re.findall(r'%([\w.\-]+) = [^\n]*?metadata=\{op_name="([^"]+)"', hlo_text))


def main(_):
  host_memory.reuse_freed_memory()  # as the experiment launcher does
  config = peer.benchmark_config(_MODEL.value, _SIZE.value)
  step = peer.MedjaxStep(config, peer.synthetic_batch(_SIZE.value, config.train.batch_size))
  for _ in range(3):
    step.train()
  jax.profiler.start_trace(_TRACE_DIR.value)
  for _ in range(_STEPS.value):
    step.train()
  jax.profiler.stop_trace()
  print(f'trace written to {_TRACE_DIR.value}')
  try:
    operations = top_operations(_TRACE_DIR.value, _STEPS.value, _TOP.value)
  except ImportError:
    print('install xprof for the per-operation summary')
    return
  print(f'{_MODEL.value} at {_SIZE.value} px, batch {config.train.batch_size}: '
        'milliseconds per step')
  sources = source_ops(step.train_step.as_text())
  for name, ms, count in operations:
    print(f'{ms:8.1f}  x{count:<3d} {name:28s} {sources.get(name, "")}')


if __name__ == '__main__':
  app.run(main)
