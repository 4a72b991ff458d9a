"""JSON request bodies -> a validated float32 pixel batch [N, 784].

The proxy validates before calling any backend, so a bad instance gets a
message naming it (and costs no model call). Accepted per instance: 28x28
(also with a channel axis, 28x28x1 or 1x28x28, as Keras arrays come) or 784
numbers in [0, 255], or `{"b64": "<base64 PNG/JPEG>"}` (TF Serving's
binary convention), either bare or under the input name `pixels`.
"""

import base64
import binascii
from typing import Any, List, Optional

import numpy as np

from models import features
from models import signatures
from serving import errors
from serving import imaging

INPUT_NAME = signatures.PIXELS_INPUT
SIGNATURES = ('serving_default', 'serving_uint8')
_SHAPES = 'a 28x28 nested list or a flat list of 784 numbers'
_SIZE = features.IMAGE_SIZE
# Per-image shapes taken: the exported signature takes any shape of 784
# pixels, and these are the ones a client means as one grayscale image.
_IMAGE_SHAPES = ((_SIZE, _SIZE), (features.NUM_PIXELS,), (_SIZE, _SIZE, 1),
                 (1, _SIZE, _SIZE))


def _numbers(value: Any, where: str) -> np.ndarray:
  try:
    arr = np.asarray(value)
  except (ValueError, TypeError):
    raise errors.InvalidInput(
        f'{where}: pixels must be {_SHAPES} (rows of unequal length?)',
        kind='wrong_shape') from None
  if arr.dtype.kind not in 'iuf':
    if arr.dtype.kind == 'O' and _only_integers(value):
      # Numbers, but past int64: JSON's integers are unbounded, numpy's not.
      raise errors.InvalidInput(
          f'{where}: pixels outside [0, 255] (integers too large for any '
          'pixel)', kind='out_of_range')
    raise errors.InvalidInput(
        f'{where}: pixels must be numbers, got {_describe(value)}',
        kind='not_numbers')
  return arr


def _only_integers(value: Any) -> bool:
  """Whether a nested list holds nothing but integers (never bools)."""
  if isinstance(value, list):
    return all(_only_integers(v) for v in value)
  return isinstance(value, int) and not isinstance(value, bool)


def _describe(value: Any) -> str:
  if isinstance(value, list):
    return 'a list with non-numeric or mixed items'
  return type(value).__name__


def check_batch(arr: np.ndarray, where: str, integers: bool = False,
                first_index: int = 0) -> np.ndarray:
  """Checks shape ([N, 28, 28], [N, 784], or with a channel axis of 1) and
  values; returns float32 [N, 784]."""
  n = arr.shape[0] if arr.ndim else 0
  per_image = arr.shape[1:]
  if n == 0 or per_image not in _IMAGE_SHAPES:
    raise errors.InvalidInput(
        f'{where}: each image must be {_SHAPES}; got shape '
        f'{list(per_image) if n else list(arr.shape)}', kind='wrong_shape')
  flat = arr.reshape(n, features.NUM_PIXELS)
  if flat.dtype.kind == 'f':
    bad = ~np.isfinite(flat).all(axis=1)
    if bad.any():
      raise errors.InvalidInput(
          f'{where}: instance {first_index + int(np.argmax(bad))} has NaN or '
          'infinite pixels; send numbers in [0, 255]', kind='not_finite')
  bad = ((flat < 0) | (flat > features.PIXEL_MAX)).any(axis=1)
  if bad.any():
    i = int(np.argmax(bad))
    raise errors.InvalidInput(
        f'{where}: instance {first_index + i} has pixels outside [0, 255] '
        f'(min {flat[i].min():g}, max {flat[i].max():g}); scale 0..1 images '
        'by 255', kind='out_of_range')
  if integers and flat.dtype.kind == 'f' and (flat != np.round(flat)).any():
    raise errors.InvalidInput(
        f'{where}: signature serving_uint8 takes integer pixels',
        kind='not_integers')
  return flat.astype(np.float32, copy=False)


def _b64_image(value: dict, where: str, max_image_pixels: int) -> np.ndarray:
  if set(value) != {'b64'} or not isinstance(value['b64'], str):
    raise errors.InvalidInput(
        f'{where}: a binary value must be {{"b64": "<base64 string>"}}',
        kind='wrong_shape')
  try:
    data = base64.b64decode(value['b64'], validate=True)
  except (binascii.Error, ValueError):
    raise errors.InvalidInput(f'{where}: "b64" is not valid base64',
                              kind='bad_base64') from None
  return imaging.to_pixels(data, max_image_pixels).reshape(
      1, features.NUM_PIXELS).astype(np.float32)


def _unwrap(value: Any, where: str) -> Any:
  """`{"pixels": v}` -> v; a bare `{"b64": ...}` stays as it is."""
  if isinstance(value, dict) and 'b64' not in value:
    unknown = sorted(set(value) - {INPUT_NAME})
    if unknown or INPUT_NAME not in value:
      raise errors.InvalidInput(
          f'{where}: unknown input name(s) {unknown or list(value)}; the model '
          f'has one input, "{INPUT_NAME}"', kind='unknown_input')
    return value[INPUT_NAME]
  return value


def one_image(value: Any, where: str, max_image_pixels: int,
              integers: bool = False, index: int = 0) -> np.ndarray:
  """One instance (numbers or {"b64"}) -> float32 [1, 784]."""
  if isinstance(value, dict):
    return _b64_image(value, where, max_image_pixels)
  arr = _numbers(value, where)
  return check_batch(arr[np.newaxis], where, integers, first_index=index)


def batch(values: List[Any], where: str, max_instances: int,
          max_image_pixels: int, integers: bool = False) -> np.ndarray:
  """A list of instances -> float32 [N, 784]."""
  if not isinstance(values, list):
    raise errors.InvalidInput(f'{where} must be a list of images',
                              kind='wrong_shape')
  if not values:
    raise errors.InvalidInput(f'{where} is empty; send at least one image',
                              kind='wrong_shape')
  if len(values) > max_instances:
    raise errors.InvalidInput(
        f'{where} has {len(values)} instances; at most {max_instances} per '
        'request, split the batch', kind='too_many_instances')
  values = [_unwrap(v, where) for v in values]
  if not any(isinstance(v, dict) for v in values):
    try:  # fast path: one numpy conversion for the whole batch
      arr = np.asarray(values)
    except (ValueError, TypeError):
      arr = None
    if arr is not None and arr.dtype.kind in 'iuf':
      return check_batch(arr, where, integers)
  return np.concatenate([
      one_image(v, where, max_image_pixels, integers, index=i)
      for i, v in enumerate(values)])


def parse_tfserving(body: Any, max_instances: int, max_image_pixels: int,
                    signature: Optional[str] = None) -> tuple:
  """A TF Serving predict body -> (pixels [N, 784], 'row' | 'columnar')."""
  if not isinstance(body, dict):
    raise errors.InvalidInput('request body must be a JSON object',
                              kind='malformed_request')
  integers = signature == 'serving_uint8'
  has_rows, has_cols = 'instances' in body, 'inputs' in body
  if has_rows == has_cols:
    raise errors.InvalidInput(
        'JSON body must have exactly one of "instances" (row format) or '
        '"inputs" (columnar format)', kind='malformed_request')
  if has_rows:
    return batch(body['instances'], '"instances"', max_instances,
                 max_image_pixels, integers), 'row'
  inputs = _unwrap(body['inputs'], '"inputs"')
  if isinstance(inputs, dict):  # a single {"b64"}: a batch of one
    inputs = [inputs]
  return batch(inputs, '"inputs"', max_instances, max_image_pixels,
               integers), 'columnar'
