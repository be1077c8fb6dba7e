"""3-D volumes: the medmnist3d family on generated npz files, 3-D ResNet and CNN, volume
augmentation and test-time views, and a trained volume model through the command line
(report, central-slice saliency, predict on .npy and NIfTI volumes)."""
import csv
import json

import jax
import nibabel
import numpy as np
import pytest

from configs import common
from medjax import config as config_lib
from medjax import data, parallel, tta
from medjax.config import ConfigError
from medjax.data import pipeline
from medjax.data.families import medmnist3d
from medjax.data.modalities import image_augment
from medjax.train import setup
from tests.conftest import run_cli, small_config

SPLIT_SIZES = {'train': 48, 'val': 16, 'test': 16}


def write_volume_npz(path, size=28, sizes=SPLIT_SIZES, classes=2, image_shape=None):
  """A small MedMNIST-layout npz of volumes whose class is a bright cube in one corner
  or the other, so a model can learn it."""
  rng = np.random.default_rng(0)
  arrays = {}
  for split, count in sizes.items():
    labels = np.arange(count) % classes
    volumes = rng.integers(0, 60, (count,) + (image_shape or (size,) * 3)).astype(np.uint8)
    for volume, label in zip(volumes, labels):
      corner = slice(0, size // 3) if label == 0 else slice(-(size // 3), None)
      volume[(corner,) * volume.ndim] = 220
    arrays[f'{split}_images'] = volumes
    arrays[f'{split}_labels'] = labels[:, None].astype(np.uint8)
  path.parent.mkdir(parents=True, exist_ok=True)
  np.savez(path, **arrays)


@pytest.fixture(scope='module')
def volume_dirs(tmp_path_factory):
  raw = tmp_path_factory.mktemp('volumes')
  write_volume_npz(raw / 'medmnist' / 'nodulemnist3d.npz')
  return raw, tmp_path_factory.mktemp('prepared_volumes')


def _volume_config(model, volume_dirs):
  raw, prepared = volume_dirs
  config = small_config(model, 'medmnist3d/nodulemnist3d')
  config.data.update(data_dir=str(raw), prepared_dir=str(prepared))
  config.model.cnn.dropout = 0.0
  return config


@pytest.fixture(scope='module')
def volumes(volume_dirs):
  return data.load(_volume_config('cnn', volume_dirs).data)


def test_the_builder_reads_a_generated_npz_in_order(volumes, volume_dirs):
  task = volumes.task
  assert task.inputs['image'].shape == (28, 28, 28, 1) and task.kind == 'binary'
  assert task.label_names == ('benign', 'malignant') and task.class_counts == (24, 24)
  raw = np.load(volume_dirs[0] / 'medmnist' / 'nodulemnist3d.npz')
  first = volumes.sources['val'][3]
  np.testing.assert_array_equal(first['image'][..., 0], raw['val_images'][3])
  assert first['label'] == raw['val_labels'][3, 0] and first['index'] == 3


def test_a_wrongly_shaped_npz_is_refused(tmp_path):
  write_volume_npz(tmp_path / 'raw' / 'medmnist' / 'organmnist3d.npz', classes=11,
                   image_shape=(28, 28))
  config = small_config('cnn', 'medmnist3d/organmnist3d')
  config.data.update(data_dir=str(tmp_path / 'raw'), prepared_dir=str(tmp_path / 'prepared'))
  with pytest.raises(ValueError, match=r'train_images has shape \(48, 28, 28\) and dtype uint8; '
                                       r'expected \(N, 28, 28, 28\) uint8'):
    data.load(config.data)


def test_unknown_sets_and_sizes_are_config_errors():
  config = common.get_config()
  config.data.name = 'medmnist3d/brainmnist3d'
  with pytest.raises(ConfigError, match='MedMNIST 3-D sets are adrenalmnist3d'):
    config_lib.validate(config)
  config.data.name, config.data.image_size = 'medmnist3d/vesselmnist3d', 128
  with pytest.raises(ConfigError, match=r'data.image_size=128: MedMNIST 3-D volumes are one of'):
    config_lib.validate(config)


@pytest.mark.parametrize('model', ['resnet', 'cnn'])
def test_3d_models_train_on_volumes(volumes, volume_dirs, model):
  config = _volume_config(model, volume_dirs)
  experiment = setup.build_experiment(config, volumes)
  kernels = [x for x in jax.tree.leaves(experiment.state.params) if x.ndim == 5]
  assert kernels and all(k.shape[:3] == (3, 3, 3) or k.shape[:3] == (1, 1, 1) for k in kernels)
  batches = iter(pipeline.train_batches(volumes.sources['train'], volumes.task, config.data,
                                        global_batch_size=16, seed=0))
  initial = jax.device_get(experiment.state.params)  # the step donates the state
  state, losses = experiment.state, []
  for _ in range(3):
    batch = parallel.to_global(setup.device_batch(next(batches)), experiment.mesh)
    state, metrics = experiment.train_step(state, batch, jax.random.key(0))
    losses.append(float(metrics['loss']))
  assert np.all(np.isfinite(losses))
  assert not np.allclose(jax.tree.leaves(state.params)[0], jax.tree.leaves(initial)[0])


def test_a_vit_refuses_volumes(volumes, volume_dirs):
  with pytest.raises(ConfigError, match=r'model.name=vit reads 2-D images \(H, W, C\), not '
                                        r'inputs of shape \(28, 28, 28, 1\)'):
    setup.build_experiment(_volume_config('vit', volume_dirs), volumes)


def _augment(**fields):
  config = common.get_config().data.augment
  config.update(fields)
  return config


def test_volume_shift_moves_whole_voxels_with_edges_extended():
  volume = np.arange(4 * 5 * 6, dtype=np.float32).reshape(1, 4, 5, 6, 1)
  moved = image_augment.shift_volumes(volume, np.array([[1, 0, -2]]))
  np.testing.assert_array_equal(moved[0, 1:, :, :4], volume[0, :3, :, 2:])
  np.testing.assert_array_equal(moved[0, 0], moved[0, 1])  # the first slice repeated
  np.testing.assert_array_equal(moved[0, :, :, 4:], moved[0, :, :, 3:4].repeat(2, 2))


def test_volume_augmentation_is_seeded_and_flips_each_axis():
  cfg = _augment(translate=0.1, horizontal_flip=True, vertical_flip=True, depth_flip=True,
                 contrast=0.2)
  volumes = np.random.default_rng(0).random((16, 8, 8, 8, 1)).astype(np.float32)

  def augmented(seed):
    params = image_augment.draw(np.random.default_rng(seed), 16, cfg, dims=3)
    return image_augment.apply(volumes, params, cfg), params

  first, params = augmented(1)
  np.testing.assert_array_equal(first, augmented(1)[0])
  assert not np.array_equal(first, augmented(2)[0])
  assert params['shift'].shape == (16, 3) and params['depth_flip'].any()
  flips_only = _augment(horizontal_flip=True, vertical_flip=True, depth_flip=True)
  params = image_augment.draw(np.random.default_rng(3), 16, flips_only, dims=3)
  out = image_augment.apply(volumes, params, flips_only)
  for i in range(16):
    expected = volumes[i]
    for flag, axis in (('depth_flip', 0), ('vertical_flip', 1), ('horizontal_flip', 2)):
      if params[flag][i]:
        expected = np.flip(expected, axis)
    np.testing.assert_array_equal(out[i], expected)


def test_rotation_of_volumes_is_a_config_error(volumes, volume_dirs):
  config = _volume_config('cnn', volume_dirs)
  config.data.augment.rotation_degrees = 10.0
  with pytest.raises(ConfigError, match=r'data.augment.rotation_degrees=10.0: volumes'):
    setup.build_experiment(config, volumes)


def test_test_time_views_flip_a_volume_across_its_width_and_height(volumes):
  batch = {'image': np.random.default_rng(0).random((2, 4, 5, 6, 1)).astype(np.float32)}
  hflip, vflip = tta.views('hflip', volumes.task)[1], tta.views('vflip', volumes.task)[1]
  np.testing.assert_array_equal(hflip(batch)['image'], batch['image'][:, :, :, ::-1])
  np.testing.assert_array_equal(vflip(batch)['image'], batch['image'][:, :, ::-1])


def test_volumes_of_another_size_are_resampled_and_scaled():
  volume = np.linspace(-1000, 400, 14 ** 3, dtype=np.float32).reshape(14, 14, 14)
  voxels = medmnist3d.to_task_voxels(volume, (28, 28, 28, 1))
  assert voxels.shape == (28, 28, 28, 1) and voxels.dtype == np.uint8
  assert voxels.min() == 0 and voxels.max() == 255
  assert voxels[0, 0, 0, 0] < voxels[-1, -1, -1, 0]
  with pytest.raises(ValueError, match=r'a volume of shape \(14, 14\)'):
    medmnist3d.to_task_voxels(volume[0], (28, 28, 28, 1))


@pytest.fixture(scope='module')
def volume_run(volume_dirs, tmp_path_factory):
  raw, prepared = volume_dirs
  workdir = tmp_path_factory.mktemp('volume_run') / 'run'
  result = run_cli('--config=configs/breast_cnn.py', f'--workdir={workdir}',
                   '--config.data.name=medmnist3d/nodulemnist3d',
                   '--config.data.augment.rotation_degrees=0', '--config.data.augment.zoom=0',
                   '--config.data.augment.depth_flip=True', '--config.eval.positive_class=',
                   '--config.train.steps=4', '--config.train.eval_every=2',
                   '--config.train.checkpoint_every=2', '--config.train.batch_size=16',
                   '--config.train.progress_bar=False', '--config.eval.bootstrap_resamples=20',
                   '--config.explain.num_images=2', "--config.explain.methods=gradients,grad_cam",
                   '--config.data.eval_batch_size=16',
                   env={'MEDJAX_DATA_DIR': str(raw), 'MEDJAX_PREPARED_DIR': str(prepared)})
  assert result.returncode == 0, result.stderr[-3000:]
  return workdir


def test_a_volume_model_reports_and_explains_central_slices(volume_run):
  metrics = json.loads((volume_run / 'eval' / 'test' / 'metrics.json').read_text())
  assert metrics['data'] == 'medmnist3d/nodulemnist3d' and metrics['num_examples'] == 16
  assert len(list((volume_run / 'eval' / 'test' / 'saliency').glob('*.png'))) == 2


def test_predict_reads_npy_and_nifti_volumes(volume_run, tmp_path):
  folder = tmp_path / 'volumes'
  folder.mkdir()
  rng = np.random.default_rng(1)
  np.save(folder / 'a.npy', rng.normal(size=(32, 32, 32)).astype(np.float32))
  nibabel.save(nibabel.Nifti1Image(rng.normal(size=(20, 24, 28)).astype(np.float32), np.eye(4)),
               folder / 'b.nii.gz')
  (folder / 'c.nii').write_bytes(b'not a volume')
  output = tmp_path / 'out.csv'
  result = run_cli('--mode=predict', f'--workdir={volume_run}', f'--input={folder}',
                   f'--output={output}',
                   env={'MEDJAX_DATA_DIR': str(tmp_path / 'none'),
                        'MEDJAX_PREPARED_DIR': str(tmp_path / 'none')})
  assert result.returncode == 1, result.stderr[-2000:]  # one file failed, the others done
  rows = {row['input'].split('/')[-1]: row for row in csv.DictReader(output.open())}
  assert [rows[name]['status'] for name in ('a.npy', 'b.nii.gz', 'c.nii')] == [
      'ok', 'ok', 'error']
  assert 'not a readable NIfTI file' in rows['c.nii']['error']
  for name in ('a.npy', 'b.nii.gz'):
    probs = float(rows[name]['prob_benign']) + float(rows[name]['prob_malignant'])
    assert probs == pytest.approx(1, abs=1e-5)
