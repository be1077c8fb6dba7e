"""Where one train step's time goes: a jax.profiler trace of medjax's real step.

  python -m benchmarks.profile_step --model=cnn --size=28 --trace_dir=/tmp/medjax-trace
  python -m benchmarks.profile_step --model=cnn --size=28 --peer   # and PyTorch's step
  python -m benchmarks.profile_step --model=resnet1d --signal=mitdb --peer

The step is the one `benchmarks.peer` times (same model, size and batch). Writes
the trace of `--traced_steps` steps to `--trace_dir` (open it with XProf or TensorBoard's
profile plugin); where `xprof` is installed (`pip install xprof`, not a medjax
dependency) it also prints the XLA operations that took the most wall time per step.
With `--peer`, PyTorch's step on the same batch follows under `torch.profiler`, its
operators by self CPU time per step.
"""
import bisect
import collections
import glob
import json
import os
import re

import jax
from absl import app, flags

from benchmarks import peer
from medjax import host_memory

_MODEL = flags.DEFINE_enum('model', 'cnn', sorted(peer.MODELS) + sorted(peer.SIGNAL_MODELS),
                           'model to profile')
_SIZE = flags.DEFINE_integer('size', 28, 'image size (image models)')
_SIGNAL = flags.DEFINE_enum('signal', 'ecg5000', sorted(peer.SIGNAL_INPUTS),
                            'ECG input shape (signal models)')
_STEPS = flags.DEFINE_integer('traced_steps', 5, 'traced steps (after 3 untraced ones)')
_TRACE_DIR = flags.DEFINE_string('trace_dir', '/tmp/medjax-trace', 'where the trace goes')
_TOP = flags.DEFINE_integer('top', 25, 'operations to print')
_PEER = flags.DEFINE_bool('peer', False, "also profile the PyTorch peer's step")
# The runtime's frame around one execution of the step, and the host-side frames
# (Python, the runtime's executor), which are not XLA operations.
_STEP_FRAME = 'CommonPjRtLoadedExecutable::ExecuteHelperOnSingleDevice'
_HOST_FRAMES = ('$', 'Thunk', 'Threadpool', 'Pjit', 'Common', 'Slinky', 'Handle', 'Allocate',
                'Parse')
_END_MARK = 'end: '


def _operation_spans(events, start, stop):
  """(begin, end, name) of each XLA operation started within [start, stop].

  An operation that XLA splits over its threads is traced as a slice on the thread
  that launched it plus an 'end: <name>' marker when its last part finishes; it
  lasts until that marker.
  """
  marks = collections.defaultdict(list)
  for event in events:
    if event['name'].startswith(_END_MARK) and start <= event['ts'] <= stop:
      marks[event['name'][len(_END_MARK):]].append(event['ts'])
  for times in marks.values():
    times.sort()
  spans = []
  for event in events:
    name = event['name']
    if (event.get('ph') != 'X' or name.startswith(_HOST_FRAMES + (_END_MARK,)) or
        not start <= event['ts'] <= stop):
      continue
    end = event['ts'] + event['dur']
    times = marks.get(name, [])
    later = bisect.bisect_left(times, event['ts'])
    if later < len(times):
      end = max(end, times[later])
    spans.append((event['ts'], min(end, stop), name))
  return spans


def wall_shares(spans, start, stop) -> collections.Counter:
  """Microseconds of [start, stop] per operation: every stretch of wall time split
  evenly between the operations running in it ('(idle)' where none is), so the
  shares add up to the step and operations that overlap are not counted twice."""
  shares = collections.Counter()
  cuts = sorted({start, stop, *(t for begin, end, _ in spans for t in (begin, end))})
  for left, right in zip(cuts, cuts[1:]):
    running = [name for begin, end, name in spans if begin <= left and end >= right]
    for name in running or ['(idle)']:
      shares[name] += (right - left) / max(len(running), 1)
  return shares


def top_operations(trace_dir: str, top: int) -> list[tuple[str, float, int]]:
  """(operation, wall milliseconds per step, calls per step), most expensive first."""
  from xprof.convert import raw_to_tool_data  # optional: only for the summary
  path = sorted(glob.glob(os.path.join(trace_dir, 'plugins/profile/*/*.xplane.pb')))[-1]
  data, _ = raw_to_tool_data.xspace_to_tool_data([path], 'trace_viewer', {})
  events = [event for event in json.loads(data)['traceEvents'] if 'name' in event]
  steps = [event for event in events if event['name'] == _STEP_FRAME and 'dur' in event]
  shares, calls = collections.Counter(), collections.Counter()
  for step in steps:
    start, stop = step['ts'], step['ts'] + step['dur']
    spans = _operation_spans(events, start, stop)
    shares.update(wall_shares(spans, start, stop))
    calls.update(name for _, _, name in spans)
  return [(name, us / 1e3 / len(steps), calls[name] // len(steps))
          for name, us in shares.most_common(top)]


def source_ops(hlo_text: str) -> dict[str, str]:
  """HLO instruction name -> the JAX operation it came from (its op_name metadata)."""
  return dict(re.findall(r'%([\w.\-]+) = [^\n]*?metadata=\{op_name="([^"]+)"', hlo_text))


def profile_peer(config, task, batch, steps: int, top: int):
  """PyTorch's step under torch.profiler: its operators by self CPU time per step."""
  from torch import profiler
  step = peer.TorchStep(config, task, batch)
  memory_format = peer.pick_memory_format(step)
  with profiler.profile(activities=[profiler.ProfilerActivity.CPU]) as run:
    for _ in range(steps):
      step.train()
  print(f'\nPyTorch ({memory_format}): self CPU milliseconds per step')
  averages = sorted(run.key_averages(), key=lambda row: row.self_cpu_time_total, reverse=True)
  for row in averages[:top]:
    print(f'{row.self_cpu_time_total / 1e3 / steps:8.1f}  x{row.count // steps:<3d} {row.key}')


def main(_):
  host_memory.reuse_freed_memory()  # as the experiment launcher does
  [(_, label, config, task)] = peer.benchmark_cases([_MODEL.value], [_SIZE.value],
                                                   [_SIGNAL.value], 'float32')
  batch = peer.synthetic_batch(task, config.train.batch_size)
  step = peer.MedjaxStep(config, task, batch)
  for _ in range(3):
    step.train()
  jax.profiler.start_trace(_TRACE_DIR.value)
  for _ in range(_STEPS.value):
    step.train()
  jax.profiler.stop_trace()
  print(f'trace written to {_TRACE_DIR.value}')
  try:
    operations = top_operations(_TRACE_DIR.value, _TOP.value)
  except ImportError:
    print('install xprof for the per-operation summary')
  else:
    print(f'{_MODEL.value} on {label}, batch {config.train.batch_size}: '
          'wall milliseconds per step')
    sources = source_ops(step.train_step.as_text())
    for name, ms, count in operations:
      print(f'{ms:8.1f}  x{count:<3d} {name:28s} {sources.get(name, "")}')
  if _PEER.value:
    profile_peer(config, task, batch, _STEPS.value, _TOP.value)


if __name__ == '__main__':
  app.run(main)
