"""Reading DICOM, PNG and JPEG files into the training pixel format."""
import numpy as np
import PIL.Image
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medjax.data.modalities import image_files as images


def _write_dicom(path, pixels, photometric='MONOCHROME2', slope=None, intercept=None,
                 window=None):
  meta = FileMetaDataset()
  meta.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.7'
  meta.MediaStorageSOPInstanceUID = generate_uid()
  meta.TransferSyntaxUID = ExplicitVRLittleEndian
  ds = pydicom.Dataset()
  ds.file_meta = meta
  ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
  ds.Rows, ds.Columns = pixels.shape
  ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
  ds.BitsAllocated = ds.BitsStored = 16
  ds.HighBit, ds.PixelRepresentation = 15, 1
  ds.PixelData = pixels.astype(np.int16).tobytes()
  if slope is not None:
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
  if window is not None:
    ds.WindowCenter, ds.WindowWidth = window
  ds.save_as(path, enforce_file_format=True)
  return path


RAMP = np.arange(64, dtype=np.int16).reshape(8, 8) * 10  # 0 .. 630


def test_dicom_full_range_and_monochrome1_inversion(tmp_path):
  plain = images.read_image(_write_dicom(tmp_path / 'a.dcm', RAMP))
  assert plain.dtype == np.uint8 and plain.min() == 0 and plain.max() == 255
  assert plain[0, 0] == 0 and plain[-1, -1] == 255
  inverted = images.read_image(_write_dicom(tmp_path / 'b.dcm', RAMP, 'MONOCHROME1'))
  np.testing.assert_array_equal(inverted, 255 - plain)


def test_dicom_window_applies_to_rescaled_values(tmp_path):
  # Hounsfield-like values: stored * 2 - 100 spans -100 .. 1160; window 100 +/- 100.
  path = _write_dicom(tmp_path / 'ct.dcm', RAMP, slope=2, intercept=-100, window=(100, 200))
  image = images.read_image(path)
  values = RAMP * 2 - 100
  assert np.all(image[values <= 0] == 0)      # below the window: black
  assert np.all(image[values >= 200] == 255)  # above the window: white
  inside = (values > 10) & (values < 190)
  assert np.all(np.diff(image[inside].astype(int)) >= 0) and len(np.unique(image[inside])) > 5


def test_shipped_dicom_files_read(tmp_path):
  import pydicom.data
  for name in ('CT_small.dcm', 'MR_small.dcm'):
    image = images.read_image(pydicom.data.get_testdata_file(name))
    assert image.ndim == 2 and image.dtype == np.uint8 and image.max() > image.min()


@pytest.mark.parametrize('shape,channels', [((40, 30), 1), ((40, 30, 3), 1), ((40, 30), 3)])
def test_png_is_converted_to_the_task_pixels(tmp_path, shape, channels):
  pixels = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
  PIL.Image.fromarray(pixels).save(tmp_path / 'x.png')
  out = images.to_task_pixels(images.read_image(tmp_path / 'x.png'), (28, 28, channels))
  assert out.shape == (28, 28, channels) and out.dtype == np.uint8


def test_constant_png_keeps_its_value(tmp_path):
  PIL.Image.fromarray(np.full((50, 50), 77, np.uint8)).save(tmp_path / 'flat.png')
  out = images.to_task_pixels(images.read_image(tmp_path / 'flat.png'), (28, 28, 1))
  assert np.all(out == 77)


def test_unreadable_files_raise_one_clear_error(tmp_path):
  (tmp_path / 'bad.png').write_bytes(b'not an image')
  with pytest.raises(images.ImageReadError, match='cannot read as an image'):
    images.read_image(tmp_path / 'bad.png')
  (tmp_path / 'bad.dcm').write_bytes(b'\0' * 128 + b'DICM' + b'garbage')
  with pytest.raises(images.ImageReadError):
    images.read_image(tmp_path / 'bad.dcm')
