"""Atomic writes: a reader never sees a half-written output."""
import contextlib
import json
import os
import pathlib
import shutil
import tempfile


@contextlib.contextmanager
def _replacing(path, mode: str):
  """A temporary file beside `path`, renamed onto it once the block has written it whole."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  encoding = None if 'b' in mode else 'utf-8'
  with tempfile.NamedTemporaryFile(mode, dir=path.parent, prefix=f'.{path.name}.',
                                   delete=False, encoding=encoding) as partial:
    yield partial
  os.replace(partial.name, path)


def write_text_atomic(path, text: str):
  with _replacing(path, 'w') as partial:
    partial.write(text)


def write_json_atomic(path, value):
  write_text_atomic(path, json.dumps(value, indent=2, sort_keys=True) + '\n')


def copy_atomic(source, destination):
  with _replacing(destination, 'wb') as partial, open(source, 'rb') as original:
    shutil.copyfileobj(original, partial)
