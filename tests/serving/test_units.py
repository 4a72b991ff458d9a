"""Image conversion, instance parsing and the micro-batcher, without HTTP."""

import asyncio
import io
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from serving import batching
from serving import errors
from serving import imaging
from serving import instances


def _encode(img: Image.Image, fmt='PNG') -> bytes:
  buf = io.BytesIO()
  img.save(buf, format=fmt)
  return buf.getvalue()


def test_dataset_like_png_passes_through_unchanged():
  rng = np.random.default_rng(0)
  img = np.zeros((28, 28), np.uint8)
  img[4:24, 6:22] = rng.integers(1, 256, (20, 16))
  assert np.array_equal(imaging.to_pixels(imaging.encode_png(img)), img)


def test_light_background_photo_is_inverted_resized_and_centred():
  # A dark 100x50 "garment" on a white 300x200 RGB JPEG.
  photo = np.full((200, 300, 3), 250, np.uint8)
  photo[50:150, 125:175] = 20
  px = imaging.to_pixels(_encode(Image.fromarray(photo), 'JPEG'))
  assert px.shape == (28, 28) and px.dtype == np.uint8
  assert px[0].max() < 30 and px[:, 0].max() < 30  # black background
  assert px[14, 14] > 200  # light garment
  assert px[1:27, 2:6].max() < 30  # aspect kept: width 28 -> garment narrow
  assert px[13, 12:16].min() > 150


def test_16_bit_grayscale_png_is_scaled_not_clipped():
  rng = np.random.default_rng(1)
  img = np.zeros((28, 28), np.uint8)
  img[4:24, 6:22] = rng.integers(1, 256, (20, 16))
  wide = Image.fromarray(img.astype(np.uint16) * 257)
  assert wide.mode.startswith('I')
  assert np.array_equal(imaging.to_pixels(_encode(wide)), img)


def test_transparent_background_counts_as_light():
  rgba = np.zeros((40, 40, 4), np.uint8)
  rgba[10:30, 10:30] = (10, 10, 10, 255)  # opaque dark square
  px = imaging.to_pixels(_encode(Image.fromarray(rgba, 'RGBA')))
  assert px[0, 0] == 0 and px[14, 14] > 200


@pytest.mark.parametrize('data,kind', [
    (b'', 'not_an_image'),
    (b'\x89PNG\r\n\x1a\n' + b'\0' * 30, 'not_an_image'),
    (_encode(Image.new('L', (30, 30)), 'BMP'), 'not_an_image'),
])
def test_bad_images(data, kind):
  with pytest.raises(errors.InvalidInput) as e:
    imaging.to_pixels(data)
  assert e.value.kind == kind


def test_huge_image_rejected_before_decoding():
  data = _encode(Image.new('L', (3000, 3000)))
  with pytest.raises(errors.InvalidInput) as e:
    imaging.to_pixels(data, max_pixels=1000 * 1000)
  assert e.value.kind == 'image_too_large' and 'scale it down' in e.value.message


def _png_claiming(width: int, height: int) -> bytes:
  """A 1x1 PNG whose header (IHDR) claims width x height pixels."""
  data = bytearray(_encode(Image.new('L', (1, 1))))
  ihdr = 8 + 4  # signature, then the IHDR chunk's length
  data[ihdr + 4:ihdr + 12] = struct.pack('>II', width, height)
  crc = zlib.crc32(bytes(data[ihdr:ihdr + 17]))  # type + 13 bytes of data
  data[ihdr + 17:ihdr + 21] = struct.pack('>I', crc)
  return bytes(data)


def test_a_header_past_pils_bomb_limit_is_too_large_not_garbage():
  """PIL refuses to open it at all (DecompressionBombError): still a PNG,
  and the client should hear that it is too large."""
  with pytest.raises(errors.InvalidInput) as e:
    imaging.to_pixels(_png_claiming(20000, 20000))
  assert e.value.kind == 'image_too_large' and 'scale it down' in e.value.message


def test_parse_tfserving_row_and_columnar():
  img = np.arange(784).reshape(28, 28) % 256
  rows, form = instances.parse_tfserving({'instances': [img.tolist()] * 2},
                                         8, 10**6)
  assert form == 'row' and rows.shape == (2, 784) and rows.dtype == np.float32
  cols, form = instances.parse_tfserving(
      {'inputs': {'pixels': [img.reshape(-1).tolist()]}}, 8, 10**6)
  assert form == 'columnar' and np.array_equal(cols[0], rows[0])
  with pytest.raises(errors.InvalidInput, match='instance 1 has pixels'):
    instances.parse_tfserving({'instances': [[0] * 784, [0] * 783 + [256]]},
                              8, 10**6)
  with pytest.raises(errors.InvalidInput, match='must be a JSON object'):
    instances.parse_tfserving([1, 2], 8, 10**6)


def test_batcher_groups_concurrent_requests_and_splits_results():
  calls = []

  def fn(pixels):
    calls.append(len(pixels))
    return pixels.sum(axis=1)

  async def main():
    b = batching.MicroBatcher(fn, max_batch_size=8, max_wait_s=0.0)
    await b.start()
    try:
      reqs = [np.full((1 + i % 2, 784), i, np.float32) for i in range(12)]
      results = await asyncio.gather(*(b.submit(r) for r in reqs))
      for r, (out, start, stop) in zip(reqs, results):
        assert stop - start == len(r)
        assert np.array_equal(out[start:stop], r.sum(axis=1))
    finally:
      await b.close()

  asyncio.run(main())
  assert sum(calls) == 18
  assert max(calls) <= 8 and len(calls) < 12  # batched, bounded


def test_batcher_waits_only_for_requests_in_flight():
  sizes = []
  pending = [0]

  async def main():
    b = batching.MicroBatcher(lambda p: sizes.append(len(p)) or p,
                              max_batch_size=64, max_wait_s=0.05,
                              pending=lambda: pending[0])
    await b.start()
    try:
      t0 = asyncio.get_running_loop().time()
      pending[0] = 1
      await b.submit(np.zeros((1, 784), np.float32))  # alone: no wait
      assert asyncio.get_running_loop().time() - t0 < 0.03
      pending[0] = 3  # three in flight: the first waits for the others
      first = asyncio.ensure_future(b.submit(np.zeros((1, 784), np.float32)))
      await asyncio.sleep(0.01)
      rest = [b.submit(np.zeros((1, 784), np.float32)) for _ in range(2)]
      await asyncio.gather(first, *rest)
    finally:
      await b.close()

  asyncio.run(main())
  assert sizes == [1, 3]


def test_batcher_propagates_model_errors_to_each_caller():
  def fn(pixels):
    raise ValueError('model exploded')

  async def main():
    b = batching.MicroBatcher(fn, 8, 0.0)
    await b.start()
    try:
      with pytest.raises(ValueError, match='exploded'):
        await b.submit(np.zeros((1, 784), np.float32))
    finally:
      await b.close()

  asyncio.run(main())


def test_config_survives_the_trip_to_worker_processes():
  from serving import config as cfg_lib
  config = cfg_lib.ServingConfig(
      serving_dir='/m', workers=2, auth_token='t',
      batching=cfg_lib.BatchingConfig(max_batch_size=8, max_wait_ms=0.5),
      logging=cfg_lib.LogConfig(sink='none', sample_rate=0.25))
  assert cfg_lib.ServingConfig.from_json(config.to_json()) == config


def test_dead_workers_live_gauges_are_forgotten(tmp_path, monkeypatch):
  import subprocess
  from serving import metrics
  dead = subprocess.Popen(['true'])
  dead.wait()
  for pid in (dead.pid, os.getpid()):
    (tmp_path / f'gauge_livesum_{pid}.db').write_bytes(b'')
    (tmp_path / f'counter_{pid}.db').write_bytes(b'')
  monkeypatch.setenv(metrics.MULTIPROC_ENV, str(tmp_path))
  metrics.forget_dead_workers()
  assert sorted(os.listdir(tmp_path)) == sorted([
      f'counter_{dead.pid}.db', f'counter_{os.getpid()}.db',
      f'gauge_livesum_{os.getpid()}.db'])
