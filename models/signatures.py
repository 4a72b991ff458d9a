"""Serving signatures: the Transform graph travels inside the SavedModel.

- `serving_default`: raw pixels as float32 0..255, shape [N, 28, 28] or [N, 784]
  (what TF Serving's JSON API gives us), -> probabilities, class ids and names.
- `serving_uint8`: the same for uint8 pixels (gRPC clients sending raw bytes).
- `examples`: serialized raw `tf.Example`s, for TFMA and batch jobs.
- `transform_features`: raw `tf.Example`s -> Transform output (debugging/TFMA).

With `flip_tta`, every prediction signature answers the mean of the model's
probabilities on the image and its mirror image (horizontal-flip test-time
augmentation), so TFMA, the monitor and the proxy all see the same model.
`shift_tta` adds the image moved by one pixel up, down, left and right
(edges repeated), each mirrored too with `flip_tta`: 10 views in one batched
call of the network. A `temperature` other than 1 rescales that mean
(`models/temperature.py`, fitted on `eval` by the Trainer); class ids stay.
"""

from typing import Dict

import tensorflow as tf
import tensorflow_transform as tft

from models import features
from models import temperature as temperature_lib

PROBABILITIES = 'probabilities'
CLASS_IDS = 'class_ids'
CLASS_NAMES = 'class_names'
PIXELS_INPUT = 'pixels'


# One-pixel moves of `shift_tta` as (rows, columns).
SHIFTS = ((1, 0), (-1, 0), (0, 1), (0, -1))


def _views(flat: tf.Tensor, flip_tta: bool, shift_tta: bool) -> list:
  """[N, 784] transformed images -> the [N, 28, 28] views to average over."""
  size = features.IMAGE_SIZE
  images = tf.reshape(flat, [-1, size, size])
  views = [images]
  if shift_tta:
    # SYMMETRIC padding by one pixel repeats the edge pixel.
    padded = tf.pad(images, [[0, 0], [1, 1], [1, 1]], mode='SYMMETRIC')
    views += [padded[:, 1 + dy:1 + dy + size, 1 + dx:1 + dx + size]
              for dy, dx in SHIFTS]
  if flip_tta:
    views += [tf.reverse(v, axis=[2]) for v in views]
  return views


def averaged_probabilities(model, flat: tf.Tensor, flip_tta: bool = False,
                           shift_tta: bool = False) -> tf.Tensor:
  """[N, 784] transformed images -> the model's probabilities averaged over
  the test-time views (before any temperature)."""
  views = _views(flat, flip_tta, shift_tta)
  if len(views) == 1:
    return model(flat, training=False)
  # One call over all views: a batch of 10 costs less than 10 batches of 1.
  batch = tf.reshape(tf.concat(views, axis=0), [-1, features.NUM_PIXELS])
  per_view = tf.reshape(model(batch, training=False),
                        [len(views), -1, features.NUM_CLASSES])
  return tf.reduce_mean(per_view, axis=0)


def _predictions(model, transformed: Dict[str, tf.Tensor],
                 flip_tta: bool = False, shift_tta: bool = False,
                 temperature: float = 1.0) -> Dict[str, tf.Tensor]:
  flat = transformed[features.transformed_name(features.IMAGE_KEY)]
  probabilities = temperature_lib.apply(
      averaged_probabilities(model, flat, flip_tta, shift_tta), temperature)
  class_ids = tf.argmax(probabilities, axis=1)
  names = tf.constant(features.CLASS_NAMES)
  return {
      PROBABILITIES: probabilities,
      CLASS_IDS: class_ids,
      CLASS_NAMES: tf.gather(names, class_ids),
  }


def _raw_pixels_to_features(pixels: tf.Tensor) -> Dict[str, tf.Tensor]:
  """Checks shape and range of client pixels and shapes them like tf.Examples."""
  pixels = tf.cast(pixels, tf.float32)
  checks = [
      tf.debugging.assert_rank_at_least(
          pixels, 2, message='pixels must be a batch: [N, 28, 28] or [N, 784]'),
  ]
  # The rank check must pass before the per-image size can be computed.
  with tf.control_dependencies(checks):
    per_image = tf.reduce_prod(tf.shape(pixels)[1:])
  checks += [
      tf.debugging.assert_equal(
          per_image, features.NUM_PIXELS,
          message='each image must have 28x28 = 784 pixels'),
      # NaN fails both comparisons, so it is rejected too.
      tf.debugging.assert_equal(
          tf.reduce_all((pixels >= 0.0) & (pixels <= features.PIXEL_MAX)),
          True, message='pixel values must be numbers in [0, 255]'),
  ]
  # Explicit dependencies: in a graph, a failing reshape could otherwise run
  # first and hide the message a client can act on.
  with tf.control_dependencies(checks):
    flat = tf.reshape(pixels, [-1, features.NUM_PIXELS])
  return {features.IMAGE_KEY: tf.cast(tf.round(flat), tf.int64)}


def make_serving_signatures(model, tf_transform_output: tft.TFTransformOutput,
                            flip_tta: bool = False, shift_tta: bool = False,
                            temperature: float = 1.0):
  """Returns the signatures to save with the model."""
  # Tracked as an attribute so the Transform assets are saved with the model.
  model.tft_layer = tf_transform_output.transform_features_layer()
  raw_spec = tf_transform_output.raw_feature_spec()
  serving_spec = {k: v for k, v in raw_spec.items() if k != features.LABEL_KEY}

  def predict_pixels(pixels):
    return _predictions(model, model.tft_layer(_raw_pixels_to_features(pixels)),
                        flip_tta, shift_tta, temperature)

  @tf.function(input_signature=[
      tf.TensorSpec(shape=None, dtype=tf.float32, name=PIXELS_INPUT)])
  def serve_float(pixels):
    return predict_pixels(pixels)

  @tf.function(input_signature=[
      tf.TensorSpec(shape=None, dtype=tf.uint8, name=PIXELS_INPUT)])
  def serve_uint8(pixels):
    return predict_pixels(pixels)

  @tf.function(input_signature=[
      tf.TensorSpec(shape=[None], dtype=tf.string, name='examples')])
  def serve_examples(serialized):
    raw = tf.io.parse_example(serialized, serving_spec)
    return _predictions(model, model.tft_layer(raw), flip_tta, shift_tta,
                        temperature)

  @tf.function(input_signature=[
      tf.TensorSpec(shape=[None], dtype=tf.string, name='examples')])
  def transform_features(serialized):
    return model.tft_layer(tf.io.parse_example(serialized, raw_spec))

  return {
      'serving_default': serve_float,
      'serving_uint8': serve_uint8,
      'examples': serve_examples,
      'transform_features': transform_features,
  }


def export(model, tf_transform_output: tft.TFTransformOutput,
           export_dir: str, flip_tta: bool = False,
           shift_tta: bool = False, temperature: float = 1.0) -> None:
  tf.saved_model.save(model, export_dir, signatures=make_serving_signatures(
      model, tf_transform_output, flip_tta, shift_tta, temperature))
