import os
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds
from scipy import ndimage

import medjax.data
from medjax.data import pipeline, sources
from medjax.data.families import medmnist
from medjax.data.modalities import image_augment as augment
from medjax.data.download import MissingDataError, locate_or_download
from tests.conftest import small_config


def _write_npz(path, sizes=(10, 3, 5), shape=(28, 28), num_classes=2, seed=0):
  rng = np.random.default_rng(seed)
  arrays = {}
  for split, n in zip(medmnist.SPLITS, sizes):
    arrays[f'{split}_images'] = rng.integers(0, 256, (n,) + shape, dtype=np.uint8)
    arrays[f'{split}_labels'] = (np.arange(n) % num_classes).astype(np.uint8)[:, None]
  np.savez(path, **arrays)
  return arrays


def _config_for(tmp_path, name='breastmnist'):
  config = small_config(data=f'medmnist/{name}').data
  config.data_dir = str(tmp_path / 'raw')
  config.prepared_dir = str(tmp_path / 'prepared')
  return config


def test_builder_prepares_from_a_local_npz(tmp_path):
  (tmp_path / 'raw' / 'medmnist').mkdir(parents=True)
  arrays = _write_npz(tmp_path / 'raw' / 'medmnist' / 'breastmnist.npz')
  dataset = medjax.data.load(_config_for(tmp_path))
  assert {split: len(s) for split, s in dataset.sources.items()} == {
      'train': 10, 'val': 3, 'test': 5}
  assert dataset.task.kind == 'binary'
  assert dataset.task.label_names == ('malignant', 'normal, benign')
  assert dataset.task.class_counts == (5, 5)
  assert dataset.task.inputs['image'].shape == (28, 28, 1)
  assert list((tmp_path / 'prepared' / 'medmnist' / 'breastmnist' / '1.1.0').glob(
      '*.array_record*'))
  for position, example in enumerate(dataset.sources['test']):  # kept in the official order
    assert int(example['index']) == position
    np.testing.assert_array_equal(example['image'][..., 0], arrays['test_images'][position])
    assert example['label'] == arrays['test_labels'][position, 0]


def test_larger_sizes_use_their_own_file(tmp_path):
  (tmp_path / 'raw' / 'medmnist').mkdir(parents=True)
  _write_npz(tmp_path / 'raw' / 'medmnist' / 'breastmnist_64.npz', shape=(64, 64))
  config = _config_for(tmp_path)
  config.image_size = 64
  assert medjax.data.load(config).task.inputs['image'].shape == (64, 64, 1)


def test_every_medmnist_set_has_a_builder_config_per_size():
  names = {config.name for config in medmnist.Medmnist.BUILDER_CONFIGS}
  assert len(medmnist.DATASETS) == 12 and len(names) == 48
  assert {'chestmnist', 'retinamnist_224', 'organsmnist_64'} <= names
  kinds = {name: info.kind for name, info in medmnist.DATASETS.items()}
  assert (kinds['chestmnist'], kinds['retinamnist'], kinds['breastmnist']) == (
      'multilabel', 'ordinal', 'binary')


def test_missing_file_is_downloaded_atomically_from_its_url(tmp_path, monkeypatch):
  source = tmp_path / 'mirror' / 'breastmnist.npz'
  source.parent.mkdir()
  _write_npz(source)
  monkeypatch.setattr(medmnist, 'URL', source.parent.as_uri() + '/{filename}')
  dataset = medjax.data.load(_config_for(tmp_path))
  assert len(dataset.sources['train']) == 10
  downloaded = tmp_path / 'raw' / 'medmnist' / 'breastmnist.npz'
  assert downloaded.read_bytes() == source.read_bytes()
  assert [p.name for p in downloaded.parent.iterdir()] == ['breastmnist.npz']


def test_missing_file_without_network_names_the_file_to_place(tmp_path, monkeypatch):
  monkeypatch.setattr(medmnist, 'URL', (tmp_path / 'nowhere').as_uri() + '/{filename}')
  with pytest.raises(MissingDataError) as error:
    medjax.data.load(_config_for(tmp_path))
  message = str(error.value)
  assert 'place the file at' in message and 'breastmnist.npz' in message
  assert '\n' not in message
  assert not (tmp_path / 'raw' / 'medmnist' / 'breastmnist.npz').exists()


def test_corrupt_or_wrong_shaped_npz_is_refused(tmp_path):
  raw = tmp_path / 'raw' / 'medmnist'
  raw.mkdir(parents=True)
  (raw / 'breastmnist.npz').write_bytes(b'not a zip file')
  with pytest.raises(ValueError, match='not a readable MedMNIST npz'):
    medjax.data.load(_config_for(tmp_path))
  _write_npz(raw / 'pneumoniamnist.npz', shape=(32, 32))
  with pytest.raises(ValueError, match=r'train_images has shape \(10, 32, 32\)'):
    medjax.data.load(_config_for(tmp_path, 'pneumoniamnist'))


def test_unknown_data_names_are_refused(tmp_path):
  with pytest.raises(ValueError, match='medmnist/kneemnist: unknown'):
    medjax.data.load(_config_for(tmp_path, 'kneemnist'))
  config = _config_for(tmp_path)
  config.name = 'imagenet'
  with pytest.raises(ValueError, match='expected <family>/<data set>'):
    medjax.data.load(config)


def test_pipeline_under_tfds_mock_data(tmp_path):
  config = _config_for(tmp_path, 'dermamnist')
  with tfds.testing.mock_data(num_examples=20, policy=tfds.testing.MockPolicy.USE_CODE):
    dataset = medjax.data.load(config)
    assert dataset.task.kind == 'multiclass' and dataset.task.num_classes == 7
    loader = pipeline.train_batches(dataset.sources['train'], dataset.task, config,
                                    global_batch_size=8, seed=0)
    batch = next(iter(loader))
  assert batch['image'].shape == (8, 28, 28, 3) and batch['image'].dtype == np.float32
  assert batch['label'].shape == (8,) and batch['label'].max() < 7
  assert -1.0 <= batch['image'].min() and batch['image'].max() <= 1.0


def _augment_config(**overrides):
  config = small_config().data.augment
  config.update(dict(rotation_degrees=20.0, zoom=0.1, translate=0.1, horizontal_flip=True,
                     brightness=0.1, contrast=0.2), **overrides)
  return config


def test_augmentation_is_identical_for_a_seed_and_differs_across_seeds(breast):
  config = small_config().data
  config.augment = _augment_config()

  def first_batch(seed):
    loader = pipeline.train_batches(breast.sources['train'], breast.task, config,
                                    global_batch_size=16, seed=seed)
    return next(iter(loader))

  a, b, c = first_batch(1), first_batch(1), first_batch(2)
  np.testing.assert_array_equal(a['image'], b['image'])
  np.testing.assert_array_equal(a['index'], b['index'])
  assert not np.array_equal(a['index'], c['index'])
  # Same examples, other generator: other augmentations.
  images = sources.read_batch(breast.sources['train'], range(8))['image'] / np.float32(255)
  one, same, other = (augment.apply(images, augment.draw(np.random.default_rng(seed), 8,
                                                         config.augment), config.augment)
                      for seed in (1, 1, 2))
  np.testing.assert_array_equal(one, same)
  assert np.abs(one - other).mean(axis=(1, 2, 3)).min() > 0.01
  assert one.shape == images.shape and 0 <= one.min() and one.max() <= 1


def test_augmentation_with_zero_ranges_is_the_identity(breast):
  images = sources.read_batch(breast.sources['train'], [3, 4])['image'] / np.float32(255)
  config = _augment_config(rotation_degrees=0.0, zoom=0.0, translate=0.0, horizontal_flip=False,
                           brightness=0.0, contrast=0.0)
  assert augment.is_identity(config)
  params = augment.draw(np.random.default_rng(0), 2, config)
  np.testing.assert_array_equal(augment.apply(images, params, config), images)


def test_batched_affine_resampling_matches_scipy_per_image():
  rng = np.random.default_rng(0)
  images = rng.random((5, 28, 20, 2)).astype(np.float32)
  angles, scales = rng.uniform(-0.6, 0.6, 5), rng.uniform(0.7, 1.3, 5)
  matrices = np.stack([[[np.cos(a) / s, -np.sin(a) / s], [np.sin(a) / s, np.cos(a) / s]]
                       for a, s in zip(angles, scales)])
  offsets = rng.uniform(-6, 6, (5, 2))  # shifts large enough to sample past every edge
  batched = augment.affine_resample(images, matrices, offsets)
  for n in range(5):
    for c in range(2):
      expected = ndimage.affine_transform(images[n, ..., c], matrices[n], offsets[n], order=1,
                                          mode='nearest')
      np.testing.assert_allclose(batched[n, ..., c], expected, atol=1e-5)


def test_flips_contrast_and_brightness_follow_their_parameters():
  images = np.random.default_rng(0).random((3, 4, 5, 1)).astype(np.float32) * 0.5 + 0.25
  config = _augment_config(rotation_degrees=0.0, zoom=0.0, translate=0.0, vertical_flip=True)
  params = {'angle': np.zeros(3), 'scale': np.ones(3), 'shift': np.zeros((3, 2)),
            'horizontal_flip': np.array([True, False, False]),
            'vertical_flip': np.array([False, True, False]),
            'contrast': np.array([1.0, 1.0, 0.5]), 'brightness': np.array([0.0, 0.1, 0.0])}
  out = augment.apply(images, params, config)
  np.testing.assert_allclose(out[0], images[0, :, ::-1], atol=1e-6)
  np.testing.assert_allclose(out[1], images[1, ::-1] + 0.1, atol=1e-6)
  mean = images[2].mean()
  np.testing.assert_allclose(out[2], (images[2] - mean) * 0.5 + mean, atol=1e-6)


def test_each_epoch_is_a_new_permutation_of_the_training_set(breast):
  size = len(breast.sources['train'])
  assert size == 546  # 13 batches of 42 make one epoch
  loader = iter(pipeline.train_batches(breast.sources['train'], breast.task, small_config().data,
                                       global_batch_size=42, seed=0))
  epochs = [np.concatenate([next(loader)['index'] for _ in range(13)]) for _ in range(2)]
  for epoch in epochs:
    np.testing.assert_array_equal(np.sort(epoch), np.arange(size))
  assert not np.array_equal(epochs[0], epochs[1])
  # The stream does not depend on the batch size: batches of 40 cross into epoch 1.
  loader = iter(pipeline.train_batches(breast.sources['train'], breast.task, small_config().data,
                                       global_batch_size=40, seed=0))
  crossing = np.concatenate([next(loader)['index'] for _ in range(14)])
  np.testing.assert_array_equal(crossing, np.concatenate(epochs)[:560])


def test_processes_share_the_global_batch_and_its_augmentation(breast):
  config = small_config().data
  config.augment = _augment_config()

  def batches(process_index, process_count):
    loader = iter(pipeline.train_batches(breast.sources['train'], breast.task, config,
                                         global_batch_size=12, seed=3,
                                         process_index=process_index,
                                         process_count=process_count))
    return [next(loader) for _ in range(2)]

  whole = batches(0, 1)
  parts = [batches(p, 3) for p in range(3)]
  for step in range(2):
    for key in ('image', 'label', 'index'):
      np.testing.assert_array_equal(
          whole[step][key], np.concatenate([part[step][key] for part in parts]))


def test_small_splits_are_held_in_memory_and_give_the_same_batches():
  in_memory, on_disk = small_config().data, small_config().data
  on_disk.in_memory_mib = 0.0
  memory, disk = medjax.data.load(in_memory), medjax.data.load(on_disk)
  assert isinstance(memory.sources['train'], sources.InMemorySource)
  assert not isinstance(disk.sources['train'], sources.InMemorySource)
  assert memory.task == disk.task
  for config in (in_memory, on_disk):
    config.augment = _augment_config()
  first = [next(iter(pipeline.train_batches(dataset.sources['train'], dataset.task, config,
                                            global_batch_size=8, seed=0)))
           for dataset, config in ((memory, in_memory), (disk, on_disk))]
  for key in first[0]:
    np.testing.assert_array_equal(first[0][key], first[1][key])
  np.testing.assert_array_equal(memory.sources['test'][5]['image'],
                                disk.sources['test'][5]['image'])


@pytest.mark.parametrize('batch_size,process_count', [(64, 1), (50, 1), (7, 3), (156, 2)])
def test_evaluation_covers_every_example_exactly_once(breast, batch_size, process_count):
  source = breast.sources['test']
  seen, batch_counts = [], []
  for process in range(process_count):
    batches = list(pipeline.eval_batches(source, breast.task, batch_size=batch_size,
                                         process_index=process, process_count=process_count))
    batch_counts.append(len(batches))
    for batch in batches:
      assert batch['image'].shape[0] == batch_size
      seen.extend(batch['index'][batch['mask'] > 0].tolist())
  assert len(set(batch_counts)) == 1  # every process runs the same number of steps
  assert sorted(seen) == list(range(len(source)))


def test_data_dir_defaults_to_the_environment(monkeypatch):
  from configs import common
  monkeypatch.setenv('MEDJAX_DATA_DIR', '/somewhere/data')
  assert common.get_config().data.data_dir == '/somewhere/data'
  monkeypatch.delenv('MEDJAX_DATA_DIR')
  assert common.get_config().data.data_dir == os.path.expanduser('~/.medjax/data')


def test_locate_prefers_the_local_file(tmp_path):
  (tmp_path / 'x.npz').write_bytes(b'local')
  assert locate_or_download(str(tmp_path), 'x.npz', 'file:///nonexistent').read_bytes() == b'local'


class _CountingSource:
  """A data source that records how many examples were read."""

  def __init__(self, source):
    self._source, self.reads = source, 0

  def __len__(self):
    return len(self._source)

  def __getitem__(self, index):
    self.reads += 1
    return self._source[index]


def test_the_training_loader_prepares_only_prefetch_batches_ahead(breast):
  config = small_config().data
  config.prefetch_batches = 2
  source = _CountingSource(breast.sources['train'])
  batches = iter(pipeline.train_batches(source, breast.task, config, global_batch_size=4,
                                        seed=0))
  next(batches)
  time.sleep(1.0)  # time for an unbounded loader to run far ahead
  # The batch taken, the prefetch buffer and at most one batch per thread in flight.
  assert source.reads <= 4 * (1 + 2 + 2)
