"""Uploaded PNG/JPEG -> a 28x28 grayscale image that looks like Fashion-MNIST.

Fashion-MNIST garments are light on a black background, centred, with the
longest side filling the 28-pixel frame. A photo of a shirt on a white table is
the opposite, so we decide by the background: the median of the image's
1-pixel border. If it is light (> 127) the image is inverted. Transparent
pixels are composited over white first (so they count as background). The
result is resized to fit 28x28 keeping the aspect ratio and padded with black.
A 28x28 grayscale PNG of a dataset image passes through unchanged.
"""

import io

import numpy as np
from PIL import Image
from PIL import ImageOps

from models import features
from serving import errors

FORMATS = ('PNG', 'JPEG')
_BACKGROUND_THRESHOLD = 127


def _open(data: bytes, max_pixels: int) -> Image.Image:
  try:
    image = Image.open(io.BytesIO(data))
  except Image.DecompressionBombError:
    # PIL refuses to open a header claiming over ~179M pixels: a real image,
    # too large, not garbage.
    raise errors.InvalidInput(
        f'image has more than {max_pixels} pixels (far more); scale it down '
        'before sending', kind='image_too_large') from None
  except Exception:  # PIL raises several types for garbage
    raise errors.InvalidInput(
        'the upload is not a PNG or JPEG image', kind='not_an_image') from None
  if image.format not in FORMATS:
    raise errors.InvalidInput(
        f'unsupported image format {image.format}; send PNG or JPEG',
        kind='not_an_image')
  width, height = image.size
  if width * height > max_pixels:
    raise errors.InvalidInput(
        f'image is {width}x{height}; at most {max_pixels} pixels are accepted '
        '(scale it down before sending)', kind='image_too_large')
  try:
    image.load()  # decoding happens here: a truncated file fails now
  except Exception as e:
    raise errors.InvalidInput(
        f'the image could not be decoded ({e}); is the file complete?',
        kind='corrupt_image') from None
  return image


def _to_gray(image: Image.Image) -> Image.Image:
  image = ImageOps.exif_transpose(image)
  if image.mode.startswith('I'):
    # A 16-bit grayscale PNG ('I;16', 'I'): PIL's convert('L') clips values
    # above 255 instead of scaling them, which turns most of it white.
    wide = np.asarray(image, dtype=np.float64) / 257.0
    return Image.fromarray(np.clip(np.round(wide), 0, 255).astype(np.uint8))
  if image.mode in ('RGBA', 'LA', 'PA') or (
      image.mode == 'P' and 'transparency' in image.info):
    rgba = image.convert('RGBA')
    white = Image.new('RGBA', rgba.size, (255, 255, 255, 255))
    image = Image.alpha_composite(white, rgba)
  return image.convert('L')


def background_is_light(gray: np.ndarray) -> bool:
  """True if the median border pixel is light, i.e. the image needs inverting."""
  border = np.concatenate([gray[0], gray[-1], gray[1:-1, 0], gray[1:-1, -1]])
  return float(np.median(border)) > _BACKGROUND_THRESHOLD


def to_pixels(data: bytes, max_pixels: int = 4096 * 4096) -> np.ndarray:
  """Encoded image bytes -> uint8 array [28, 28], dataset-like."""
  gray = np.asarray(_to_gray(_open(data, max_pixels)), dtype=np.uint8)
  if background_is_light(gray):
    gray = 255 - gray
  size = features.IMAGE_SIZE
  height, width = gray.shape
  if (height, width) == (size, size):
    return gray
  scale = size / max(height, width)
  new_w = max(1, round(width * scale))
  new_h = max(1, round(height * scale))
  resized = Image.fromarray(gray).resize((new_w, new_h), Image.LANCZOS)
  canvas = np.zeros((size, size), dtype=np.uint8)
  top, left = (size - new_h) // 2, (size - new_w) // 2
  canvas[top:top + new_h, left:left + new_w] = np.asarray(resized)
  return canvas


def encode_png(pixels: np.ndarray) -> bytes:
  """uint8 [28, 28] -> PNG bytes (tests, benchmarks and docs examples)."""
  buf = io.BytesIO()
  Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(
      buf, format='PNG')
  return buf.getvalue()
