"""Raw files: look in the data directory first, else download, else one clear error."""
import os
import pathlib
import shutil
import tempfile
import urllib.error
import urllib.request


class MissingDataError(RuntimeError):
  """A raw file is neither in the data directory nor downloadable."""


def locate_or_download(data_dir: str, relative_path: str, url: str, timeout_s: float = 60.0):
  """Returns `<data_dir>/<relative_path>`, downloading it from `url` when absent.

  The download goes to a temporary name in the same folder and is renamed only
  when complete, so an interrupted download never leaves a truncated file.
  """
  target = pathlib.Path(data_dir).expanduser() / relative_path
  if target.exists():
    return target
  try:
    target.parent.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
      with tempfile.NamedTemporaryFile(dir=target.parent, delete=False,
                                       prefix=f'.{target.name}.') as partial:
        shutil.copyfileobj(response, partial)
    os.replace(partial.name, target)
  except (urllib.error.URLError, OSError, ValueError) as error:
    if 'partial' in locals() and os.path.exists(partial.name):
      os.unlink(partial.name)
    raise MissingDataError(
        f'{target} is missing and downloading {url} failed ({error}); '
        f'place the file at {target} (or set $MEDJAX_DATA_DIR / config.data.data_dir)'
    ) from None
  return target
