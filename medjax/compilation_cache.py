"""A persistent XLA compilation cache for the experiment launcher.

A rerun, a resumed run, another seed of a sweep or an evaluation of a trained model
compiles the same steps as the run before it. With JAX's persistent cache on, such a
process loads the compiled executable from disk instead of compiling it again (the
ResNet-18 train step of configs/pneumonia_resnet18.py: 15 s of trace + compile cold,
4 s warm; benchmarks/README.md, "Levers"). The executable is the same, so the
numbers are too.

The cache lives in $MEDJAX_COMPILATION_CACHE_DIR, by default `medjax/xla` under
$XDG_CACHE_HOME (~/.cache). `MEDJAX_COMPILATION_CACHE_DIR=off` turns it off. Only
programs that took at least a second to compile are written (JAX's default threshold,
`jax_persistent_cache_min_compile_time_secs`). XLA's CPU loader refuses an entry
compiled for a CPU with features this one lacks and compiles afresh, so a cache on a
shared home folder is safe across machines, if not useful.
"""
import os
import pathlib

import jax

OFF = 'off'


def default_directory() -> pathlib.Path:
  cache_home = os.environ.get('XDG_CACHE_HOME') or pathlib.Path.home() / '.cache'
  return pathlib.Path(cache_home) / 'medjax' / 'xla'


def enable() -> pathlib.Path | None:
  """Turns the persistent cache on (see the module docstring); returns its folder, or
  None when $MEDJAX_COMPILATION_CACHE_DIR is `off`. Call it before the first compile."""
  setting = os.environ.get('MEDJAX_COMPILATION_CACHE_DIR', '')
  if setting == OFF:
    return None
  directory = pathlib.Path(setting) if setting else default_directory()
  jax.config.update('jax_compilation_cache_dir', str(directory))
  return directory
