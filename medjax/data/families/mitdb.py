"""The MIT-BIH Arrhythmia Database (Moody and Mark 2001) as beats in the AAMI classes.

`data.name = 'mitdb/aami'`. Raw files are the PhysioNet records
`<data_dir>/mitdb/<record>.{hea,dat,atr}`, read with `wfdb` (downloaded from PhysioNet
where missing). Each annotated beat becomes one example:

  * `signal`: the window [R - window_before, R + window_after) of the leads named in
    `data.mitdb.leads` (MLII and V1 by default) after baseline removal (two median
    filters of 200 and 600 ms, de Chazal et al. 2004); a lead a record lacks is NaN,
    which the pipeline turns into the training mean (0);
  * `tabular`: RR-interval features in seconds (previous, next, local = mean of the
    last 10, record average) and the first three divided by the record average plus
    previous / next: what makes inter-patient S-beat detection work;
  * `label`: the AAMI class (N, S, V, F, Q) of the beat symbol; `record` and `sample`
    (the R peak) say where it came from.

Splits follow de Chazal et al. (2004)'s inter-patient protocol: DS1 records train,
DS2 records test, the paced records (102, 104, 107, 217) in neither. Validation is
whole DS1 records held out (`data.mitdb.val_records`, by default three that hold N, S,
V and F beats), never beats of a training record; or, with `data.cv_folds=k`, the
training and validation records together dealt into k folds of whole records, as
balanced in the AAMI classes as whole records allow, fold `data.cv_fold` validating.
Intervals bootstrap over records.
"""
import dataclasses
import hashlib
import json
import os
import pathlib
from fractions import Fraction

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from medjax.config import ConfigError
from medjax.data.download import locate_or_download
from medjax.data.families import Description
from medjax.data.task import InputSpec

CONFIG = {
    'data.mitdb.leads': 'MLII,V1',
    'data.mitdb.window_before': 90,    # samples before the R peak (0.25 s at 360 Hz)
    'data.mitdb.window_after': 166,    # samples from the R peak on: 256 in all
    'data.mitdb.train_records': '',    # '' = DS1 less the validation records
    'data.mitdb.val_records': '118,207,223',
    'data.mitdb.test_records': '',     # '' = DS2
    'data.mitdb.baseline_filter': True,
}
CROSS_VALIDATES = True
URL = 'https://physionet.org/files/mitdb/1.0.0/{filename}'
SAMPLING_RATE = 360
AAMI_CLASSES = ('N', 'S', 'V', 'F', 'Q')
AAMI_SYMBOLS = {**dict.fromkeys('NLRej', 'N'), **dict.fromkeys('AaJS', 'S'),
                **dict.fromkeys('VE', 'V'), 'F': 'F', **dict.fromkeys('/fQ', 'Q')}
DS1 = (101, 106, 108, 109, 112, 114, 115, 116, 118, 119, 122, 124, 201, 203, 205, 207, 208,
       209, 215, 220, 223, 230)
DS2 = (100, 103, 105, 111, 113, 117, 121, 123, 200, 202, 210, 212, 213, 214, 219, 221, 222,
       228, 231, 232, 233, 234)
PACED = (102, 104, 107, 217)
RECORDS = tuple(sorted(DS1 + DS2 + PACED))
RR_FEATURES = ('rr_previous', 'rr_next', 'rr_local', 'rr_average', 'rr_previous_ratio',
               'rr_next_ratio', 'rr_local_ratio', 'rr_previous_next')
LOCAL_BEATS = 10


def _record_list(field: str, text: str) -> tuple[int, ...]:
  try:
    records = tuple(int(r) for r in text.split(',') if r.strip())
  except ValueError:
    raise ConfigError(f'data.mitdb.{field}={text!r}: expected comma-separated record '
                      'numbers') from None
  unknown = sorted(set(records) - set(RECORDS))
  if unknown:
    raise ConfigError(f'data.mitdb.{field}: {unknown} are not MIT-BIH records')
  paced = sorted(set(records) & set(PACED))
  if paced:
    raise ConfigError(f'data.mitdb.{field}: {paced} are paced records, excluded by the '
                      'AAMI protocol')
  return records


def split_records(cfg) -> dict[str, tuple[int, ...]]:
  """Records of each split: inter-patient, no record in two splits."""
  val = _record_list('val_records', cfg.val_records)
  train = _record_list('train_records', cfg.train_records) or tuple(
      r for r in DS1 if r not in val)
  test = _record_list('test_records', cfg.test_records) or DS2
  splits = {'train': train, 'val': val, 'test': test}
  for name, records in splits.items():
    if not records:
      raise ConfigError(f'data.mitdb: the {name} split has no records')
  for a, b in (('train', 'val'), ('train', 'test'), ('val', 'test')):
    shared = sorted(set(splits[a]) & set(splits[b]))
    if shared:
      raise ConfigError(f'data.mitdb: records {shared} are in both {a} and {b}')
  return splits


def cross_validation_split(splits: dict, raw_dir: pathlib.Path, folds: int,
                           fold: int) -> dict[str, tuple[int, ...]]:
  """`splits` with its train and validation records together in `folds` folds of whole
  records and fold `fold` validating. The folds are scikit-learn's StratifiedGroupKFold
  over the records' annotated beats (records as groups, AAMI classes as strata): each
  class's beats spread over the folds as evenly as whole records allow, in a fixed order."""
  import wfdb
  from sklearn.model_selection import StratifiedGroupKFold
  pool = splits['train'] + splits['val']
  labels, groups = [], []
  for record in pool:
    locate_or_download(raw_dir, f'{record}.atr', URL.format(filename=f'{record}.atr'))
    symbols = [s for s in wfdb.rdann(str(raw_dir / str(record)), 'atr').symbol
               if s in AAMI_SYMBOLS]
    labels += [AAMI_SYMBOLS[s] for s in symbols]
    groups += [record] * len(symbols)
  held_out = [held for _, held in StratifiedGroupKFold(n_splits=folds).split(
      np.zeros(len(labels)), labels, groups)]
  val = set(np.asarray(groups)[held_out[fold]].tolist())
  if not val:
    raise ValueError(f'MIT-BIH cross-validation: fold {fold} of {folds} holds no record')
  return {**splits, 'train': tuple(r for r in pool if r not in val),
          'val': tuple(r for r in pool if r in val)}


# The leads of the database's records (every record has two of them; most MLII and V1).
RECORDED_LEADS = ('MLII', 'V1', 'V2', 'V4', 'V5')


def leads_of(cfg) -> tuple[str, ...]:
  return tuple(lead.strip() for lead in cfg.leads.split(',') if lead.strip())


def check_config(dataset: str, data_config) -> None:
  if dataset != 'aami':
    raise ConfigError(f"data.name=mitdb/{dataset}: unknown; the set is 'mitdb/aami' "
                      '(beats in the AAMI classes N, S, V, F, Q)')
  cfg = data_config.mitdb
  if cfg.window_before < 1 or cfg.window_after < 1:
    raise ConfigError('data.mitdb.window_before and window_after must be positive')
  if not leads_of(cfg):
    raise ConfigError('data.mitdb.leads names no lead')
  unknown = sorted(set(leads_of(cfg)) - set(RECORDED_LEADS))
  if unknown:
    raise ConfigError(f'data.mitdb.leads: {unknown} not among the leads MIT-BIH records '
                      f'have {RECORDED_LEADS}')
  splits = split_records(cfg)
  pool = len(splits['train']) + len(splits['val'])
  if data_config.cv_folds > pool:
    raise ConfigError(f'data.cv_folds={data_config.cv_folds}: MIT-BIH folds are whole '
                      f'records, and the training and validation records are {pool}')


def remove_baseline(signals: np.ndarray, sampling_rate: float) -> np.ndarray:
  """Subtracts the baseline of 200 and 600 ms median filters from each lead."""
  from scipy import ndimage  # imported where it is used, as wfdb: the registry should not load it
  first, second = (int(round(s * sampling_rate)) | 1 for s in (0.2, 0.6))
  baseline = ndimage.median_filter(ndimage.median_filter(signals, (first, 1)), (second, 1))
  return signals - baseline


def rr_features(peaks: np.ndarray, sampling_rate: float) -> np.ndarray:
  """(beats, 8) RR features of beats at sample positions `peaks` (sorted, >= 2)."""
  rr = np.diff(peaks) / sampling_rate
  previous = np.r_[rr[:1], rr]      # the first beat: its next interval
  following = np.r_[rr, rr[-1:]]    # the last beat: its previous interval
  cumulative = np.r_[0.0, np.cumsum(previous)]
  counts = np.minimum(np.arange(1, len(peaks) + 1), LOCAL_BEATS)
  local = (cumulative[1:] - cumulative[np.arange(1, len(peaks) + 1) - counts]) / counts
  average = np.full(len(peaks), rr.mean())
  return np.stack([previous, following, local, average, previous / average,
                   following / average, local / average, previous / following],
                  -1).astype(np.float32)


def beats_of(signals: np.ndarray, peaks: np.ndarray, lead_index: list[int | None], before: int,
             after: int, sampling_rate: float, baseline_filter: bool):
  """(windows (beats, before + after, leads), RR features, kept) of the beats at `peaks`;
  `kept` marks those whose window lies inside the record."""
  if baseline_filter:
    signals = remove_baseline(signals, sampling_rate)
  length = signals.shape[0]
  features = rr_features(peaks, sampling_rate)
  kept = (peaks - before >= 0) & (peaks + after <= length)
  offsets = peaks[kept, None] + np.arange(-before, after)[None]
  windows = np.full((int(kept.sum()), before + after, len(lead_index)), np.nan, np.float32)
  for channel, index in enumerate(lead_index):
    if index is not None:
      windows[:, :, channel] = signals[offsets, index]
  return windows, features[kept], kept


def _lead_index(record, leads) -> list[int | None]:
  return [record.sig_name.index(lead) if lead in record.sig_name else None for lead in leads]


def read_record(path_base, cfg):
  """The AAMI beats of one annotated record: (windows, RR features, labels, R samples)."""
  import wfdb  # imported where records are read: the registry should not need it
  record = wfdb.rdrecord(str(path_base))
  annotation = wfdb.rdann(str(path_base), 'atr')
  if record.fs != SAMPLING_RATE:
    raise ValueError(f'{path_base}: sampled at {record.fs} Hz, MIT-BIH is {SAMPLING_RATE} Hz')
  symbols = np.asarray(annotation.symbol)
  is_beat = np.isin(symbols, list(AAMI_SYMBOLS))
  peaks, symbols = np.asarray(annotation.sample)[is_beat], symbols[is_beat]
  windows, features, kept = beats_of(
      np.nan_to_num(record.p_signal), peaks, _lead_index(record, leads_of(cfg)),
      cfg.window_before, cfg.window_after, record.fs, cfg.baseline_filter)
  labels = np.asarray([AAMI_CLASSES.index(AAMI_SYMBOLS[s]) for s in symbols[kept]])
  return windows, features, labels, peaks[kept]


@dataclasses.dataclass
class MitdbConfig(tfds.core.BuilderConfig):
  fields: str = ''  # JSON of data.mitdb: what the prepared files depend on


class Mitdb(tfds.core.GeneratorBasedBuilder):
  """MIT-BIH beats in the AAMI classes, inter-patient splits."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}

  def __init__(self, *, raw_dir: pathlib.Path, **kwargs):
    self._raw_dir = raw_dir
    super().__init__(**kwargs)

  @property
  def fields(self):
    return _Fields(**json.loads(self.builder_config.fields))

  def _info(self):
    cfg = self.fields
    length, channels = cfg.window_before + cfg.window_after, len(leads_of(cfg))
    return tfds.core.DatasetInfo(
        builder=self,
        description='MIT-BIH Arrhythmia Database beats, AAMI classes, de Chazal split',
        features=tfds.features.FeaturesDict({
            'signal': tfds.features.Tensor(shape=(length, channels), dtype=np.float32),
            'tabular': tfds.features.Tensor(shape=(len(RR_FEATURES),), dtype=np.float32),
            'label': tfds.features.ClassLabel(names=AAMI_CLASSES),
            'record': tfds.features.Scalar(dtype=np.int64),
            'sample': tfds.features.Scalar(dtype=np.int64, doc='R peak, in samples'),
            'index': tfds.features.Scalar(dtype=np.int64, doc='position in this split'),
        }),
        supervised_keys=('signal', 'label'),
        disable_shuffling=True,
        homepage='https://physionet.org/content/mitdb/1.0.0/',
        citation='Moody and Mark, IEEE Eng. Med. Biol. 20(3), 2001',
    )

  def _split_generators(self, dl_manager):
    splits = split_records(self.fields)
    if self.fields.cv_folds:
      splits = cross_validation_split(splits, self._raw_dir, self.fields.cv_folds,
                                      self.fields.cv_fold)
    return {split: self._generate_examples(records) for split, records in splits.items()}

  def _generate_examples(self, records):
    index = 0
    for record in records:
      for filename in (f'{record}.hea', f'{record}.dat', f'{record}.atr'):
        locate_or_download(self._raw_dir, filename, URL.format(filename=filename))
      windows, features, labels, peaks = read_record(self._raw_dir / str(record), self.fields)
      for window, feature, label, peak in zip(windows, features, labels, peaks):
        yield index, {'signal': window, 'tabular': feature, 'label': int(label),
                      'record': record, 'sample': int(peak), 'index': index}
        index += 1


@dataclasses.dataclass(frozen=True)
class _Fields:
  """data.mitdb as plain values (what the builder config stores)."""
  leads: str
  window_before: int
  window_after: int
  train_records: str
  val_records: str
  test_records: str
  baseline_filter: bool
  cv_folds: int = 0  # data.cv_folds and data.cv_fold (stored only where cross-validating)
  cv_fold: int = 0


def builder(dataset: str, data_config, prepared_dir: str) -> Mitdb:
  values = data_config.mitdb.to_dict()
  if data_config.cv_folds:
    values.update(cv_folds=data_config.cv_folds, cv_fold=data_config.cv_fold)
  fields = json.dumps(dict(sorted(values.items())))
  digest = hashlib.sha1(fields.encode()).hexdigest()[:12]
  return Mitdb(raw_dir=pathlib.Path(os.path.expanduser(data_config.data_dir)) / 'mitdb',
               data_dir=prepared_dir, config=MitdbConfig(name=f'aami_{digest}', fields=fields),
               file_format='array_record')


def describe(built: Mitdb, data_config) -> Description:
  cfg = built.fields
  return Description(
      kind='multiclass', label_names=AAMI_CLASSES, group_key='record', scores=('aami',),
      inputs={'signal': InputSpec('signal', (cfg.window_before + cfg.window_after,
                                             len(leads_of(cfg))), sampling_rate=SAMPLING_RATE),
              'tabular': InputSpec('tabular', (len(RR_FEATURES),), feature_names=RR_FEATURES)})


def _resample(signals: np.ndarray, rate: float) -> np.ndarray:
  from scipy import signal as scipy_signal  # here too: with scipy.stats it costs 0.7 s
  ratio = Fraction(SAMPLING_RATE) / Fraction(rate).limit_denominator(1000)
  return scipy_signal.resample_poly(signals, ratio.numerator, ratio.denominator, axis=0)


def _record_beats(path_base: pathlib.Path, cfg):
  """Beats of a new WFDB record: from its .atr annotation file, else found with XQRS."""
  import wfdb
  from wfdb import processing
  record = wfdb.rdrecord(str(path_base))
  signals = np.nan_to_num(np.asarray(record.p_signal, np.float64))
  if record.fs != SAMPLING_RATE:
    signals = _resample(signals, record.fs)
  lead_index = _lead_index(record, leads_of(cfg))
  if all(index is None for index in lead_index):
    raise ValueError(f'has leads {record.sig_name}, none of {leads_of(cfg)}')
  missing = [lead for lead, index in zip(leads_of(cfg), lead_index) if index is None]
  if missing:
    logging.warning('%s: has no lead %s; the model is given the training mean there, as '
                    'for the MIT-BIH records without it', path_base, ', '.join(missing))
  if path_base.with_suffix('.atr').exists():
    annotation = wfdb.rdann(str(path_base), 'atr')
    is_beat = np.isin(annotation.symbol, list(AAMI_SYMBOLS))
    peaks = np.round(np.asarray(annotation.sample)[is_beat] * SAMPLING_RATE /
                     record.fs).astype(int)
  else:
    detector_lead = next(index for index in lead_index if index is not None)
    peaks = np.asarray(processing.xqrs_detect(signals[:, detector_lead], fs=SAMPLING_RATE,
                                              verbose=False), int)
  if len(peaks) < 2:
    raise ValueError('fewer than two beats found')
  windows, features, kept = beats_of(signals, np.sort(peaks), lead_index, cfg.window_before,
                                     cfg.window_after, SAMPLING_RATE, cfg.baseline_filter)
  return windows, features, np.sort(peaks)[kept]


def read_inputs(path, task, data_config) -> list[tuple[str, dict | str]]:
  """Every beat of a WFDB record (its .hea path or base name, or a folder of records):
  located from the record's .atr file, or with wfdb's XQRS detector where it has none."""
  path = pathlib.Path(path)
  if path.is_dir():
    bases = sorted(p.with_suffix('') for p in path.glob('*.hea'))
  else:
    bases = [path.with_suffix('') if path.suffix in ('.hea', '.dat', '.atr') else path]
  rows = []
  for base in bases:
    try:
      windows, features, peaks = _record_beats(base, data_config.mitdb)
    except Exception as error:  # noqa: BLE001  (wfdb raises many kinds on a malformed record)
      rows.append((str(base), f'cannot read the WFDB record ({type(error).__name__}: '
                              f'{" ".join(str(error).split())})'))
      continue
    rows += [(f'{base}@{peak}', {'signal': window, 'tabular': feature})
             for window, feature, peak in zip(windows, features, peaks)]
  return rows
