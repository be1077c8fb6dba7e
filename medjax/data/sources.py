"""Random-access sources of decoded examples, read a batch at a time.

A TFDS ArrayRecord source parses one record per example: about 160 us on the
2-core development machine, a fifth of what the seed CNN's train step spends per
example at 28 px. A split small enough is therefore decoded once into stacked
arrays (`InMemorySource`), from which a batch is one fancy index.
"""
from typing import Any, Sequence

import numpy as np

_CHUNK = 1024  # examples decoded per call when a whole split is read


class InMemorySource:
  """A split held as stacked numpy arrays, one per feature."""

  def __init__(self, arrays: dict[str, np.ndarray]):
    self.arrays = arrays
    self._length = len(next(iter(arrays.values())))

  def __len__(self) -> int:
    return self._length

  def __getitem__(self, index) -> dict[str, np.ndarray]:
    """One example (an int; IndexError past the end) or a batch (an index array)."""
    return {key: values[index] for key, values in self.arrays.items()}


def read_batch(source: Any, indices: Sequence[int]) -> dict[str, np.ndarray]:
  """The examples at `indices`, stacked per feature."""
  if isinstance(source, InMemorySource):
    return source[np.asarray(indices, np.intp)]
  examples = [source[int(i)] for i in indices]
  return {key: np.stack([np.asarray(example[key]) for example in examples])
          for key in examples[0]}


def read_all(source: Any, keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
  """A whole split stacked per feature (only `keys`, when given)."""
  chunks = []
  for start in range(0, len(source), _CHUNK):
    chunk = read_batch(source, range(start, min(start + _CHUNK, len(source))))
    chunks.append({key: chunk[key] for key in (keys or chunk)})
  return {key: np.concatenate([chunk[key] for chunk in chunks]) for key in chunks[0]}


def in_memory_if_small(source: Any, example_bytes: int, limit_mib: float) -> Any:
  """`source` decoded into memory when the split's arrays take at most `limit_mib`
  MiB (`example_bytes` per example), else `source` itself."""
  if len(source) == 0 or len(source) * example_bytes > limit_mib * 2**20:
    return source
  return InMemorySource(read_all(source))


class ConcatenatedSource:
  """Several sources read as one: positions run through the first, then the next.
  Each example's 'index' (its position in its split) is shifted by the examples before
  its part, so it stays its position in the whole."""

  def __init__(self, parts: Sequence[Any]):
    self.parts = list(parts)
    self._starts = np.cumsum([0] + [len(part) for part in self.parts])

  def __len__(self) -> int:
    return int(self._starts[-1])

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    if not 0 <= index < len(self):
      raise IndexError(f'position {index} of a source of {len(self)} examples')
    part = int(np.searchsorted(self._starts, index, side='right')) - 1
    example = dict(self.parts[part][int(index - self._starts[part])])
    example['index'] = np.asarray(example['index']) + self._starts[part]
    return example


def concatenated(parts: Sequence[Any]) -> Any:
  """`parts` as one source (held in memory when every part is)."""
  if all(isinstance(part, InMemorySource) for part in parts):
    starts = np.cumsum([0] + [len(part) for part in parts[:-1]])
    arrays = {key: np.concatenate([part.arrays[key] for part in parts])
              for key in parts[0].arrays}
    arrays['index'] = np.concatenate([part.arrays['index'] + start
                                      for part, start in zip(parts, starts)])
    return InMemorySource(arrays)
  return ConcatenatedSource(parts)
