"""Atomic writes: a reader never sees a half-written output."""
import json
import os
import pathlib
import tempfile


def write_text_atomic(path, text: str):
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  with tempfile.NamedTemporaryFile('w', dir=path.parent, prefix=f'.{path.name}.',
                                   delete=False, encoding='utf-8') as partial:
    partial.write(text)
  os.replace(partial.name, path)


def write_json_atomic(path, value):
  write_text_atomic(path, json.dumps(value, indent=2, sort_keys=True) + '\n')
