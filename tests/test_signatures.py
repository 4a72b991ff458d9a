"""The exported SavedModel: raw pixels in, the Keras model's predictions out."""

import os

import numpy as np
import pytest
import tensorflow as tf

from models import features
from models import signatures
from pipeline import ingest


@pytest.fixture(scope='module')
def loaded(serving_dir):
  return tf.saved_model.load(os.path.join(serving_dir, '1'))


def test_exports_the_four_signatures(loaded):
  assert set(loaded.signatures) == {'serving_default', 'serving_uint8',
                                    'examples', 'transform_features'}


def test_raw_pixels_give_the_keras_models_predictions(loaded, trained_model,
                                                      real_slice):
  model, transformed = trained_model
  images, _ = real_slice
  expected = model.predict(transformed[:32], verbose=0)
  serve = loaded.signatures['serving_default']
  for pixels in (images[:32].astype(np.float32),                    # [N,28,28]
                 images[:32].reshape(32, 784).astype(np.float32)):  # [N,784]
    out = serve(pixels=tf.constant(pixels))
    np.testing.assert_allclose(out[signatures.PROBABILITIES], expected,
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(out[signatures.CLASS_IDS],
                                  expected.argmax(axis=1))
  names = out[signatures.CLASS_NAMES].numpy()
  assert names[0].decode() == features.CLASS_NAMES[expected[0].argmax()]
  uint8 = loaded.signatures['serving_uint8'](pixels=tf.constant(images[:32]))
  np.testing.assert_allclose(uint8[signatures.PROBABILITIES], expected,
                             rtol=1e-4, atol=1e-5)


def test_tf_example_signature_matches_raw_pixels(loaded, real_slice):
  images, labels = real_slice
  serialized = [ingest.to_example(i, l) for i, l in zip(images[:8], labels[:8])]
  by_example = loaded.signatures['examples'](examples=tf.constant(serialized))
  by_pixels = loaded.signatures['serving_default'](
      pixels=tf.constant(images[:8].astype(np.float32)))
  np.testing.assert_allclose(by_example[signatures.PROBABILITIES],
                             by_pixels[signatures.PROBABILITIES], rtol=1e-5)


@pytest.mark.parametrize('pixels, message', [
    (np.zeros((2, 27, 27), np.float32), '784 pixels'),
    (np.zeros((784,), np.float32), 'must be a batch'),
    (np.full((1, 784), 256.0, np.float32), r'\[0, 255\]'),
    (np.full((1, 784), -1.0, np.float32), r'\[0, 255\]'),
    (np.full((1, 784), np.nan, np.float32), r'\[0, 255\]'),
])
def test_bad_pixels_are_rejected_with_a_message(loaded, pixels, message):
  with pytest.raises(tf.errors.InvalidArgumentError, match=message):
    loaded.signatures['serving_default'](pixels=tf.constant(pixels))


def test_flip_tta_answers_the_mean_over_the_image_and_its_mirror(
    trained_model, transform_dir, real_slice, tmp_path):
  """`flip_tta`: every prediction signature averages the model's answers on
  the image and on the image flipped left-right."""
  import tensorflow_transform as tft
  model, transformed = trained_model
  images, labels = real_slice
  signatures.export(model, tft.TFTransformOutput(transform_dir),
                    str(tmp_path / 'tta'), flip_tta=True)
  tta = tf.saved_model.load(str(tmp_path / 'tta'))
  x = np.asarray(transformed[:16]).reshape(16, 28, 28)
  expected = (model.predict(x.reshape(16, 784), verbose=0) +
              model.predict(x[:, :, ::-1].reshape(16, 784), verbose=0)) / 2
  out = tta.signatures['serving_default'](
      pixels=tf.constant(images[:16].astype(np.float32)))
  np.testing.assert_allclose(out[signatures.PROBABILITIES], expected,
                             rtol=1e-4, atol=1e-5)
  serialized = [ingest.to_example(i, l)
                for i, l in zip(images[:16], labels[:16])]
  by_example = tta.signatures['examples'](examples=tf.constant(serialized))
  np.testing.assert_allclose(by_example[signatures.PROBABILITIES], expected,
                             rtol=1e-4, atol=1e-5)


def test_shift_tta_adds_the_image_moved_one_pixel_each_way(
    trained_model, transform_dir, real_slice, tmp_path):
  """`shift_tta` with `flip_tta`: the mean over 10 views, the image and its
  mirror image, each also moved one pixel up, down, left and right with the
  edge pixels repeated (what benchmarks/recipes.py measured on `eval`)."""
  import tensorflow_transform as tft
  model, transformed = trained_model
  images, _ = real_slice
  signatures.export(model, tft.TFTransformOutput(transform_dir),
                    str(tmp_path / 'tta10'), flip_tta=True, shift_tta=True)
  tta = tf.saved_model.load(str(tmp_path / 'tta10'))
  x = np.asarray(transformed[:16]).reshape(16, 28, 28)
  views = []
  for image in (x, x[:, :, ::-1]):
    padded = np.pad(image, ((0, 0), (1, 1), (1, 1)), mode='edge')
    for dy, dx in ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)):
      views.append(padded[:, 1 + dy:29 + dy, 1 + dx:29 + dx])
  expected = np.mean([model.predict(v.reshape(16, 784), verbose=0)
                      for v in views], axis=0)
  out = tta.signatures['serving_default'](
      pixels=tf.constant(images[:16].astype(np.float32)))
  np.testing.assert_allclose(out[signatures.PROBABILITIES], expected,
                             rtol=1e-4, atol=1e-5)
  # The views differ: a model on the plain image alone answers otherwise.
  assert not np.allclose(expected, model.predict(x.reshape(16, 784),
                                                 verbose=0), atol=1e-3)


def test_a_temperature_rescales_the_tta_mean_and_keeps_the_class(
    trained_model, transform_dir, real_slice, tmp_path):
  """With a temperature T the signatures answer softmax(log(p) / T) of the
  TTA mean p (fitted by the Trainer on `eval`): sharper for T < 1, the same
  class ids."""
  import tensorflow_transform as tft
  model, transformed = trained_model
  images, _ = real_slice
  output = tft.TFTransformOutput(transform_dir)
  signatures.export(model, output, str(tmp_path / 'plain'), flip_tta=True)
  signatures.export(model, output, str(tmp_path / 'hot'), flip_tta=True,
                    temperature=0.5)
  pixels = tf.constant(images[:32].astype(np.float32))
  plain = tf.saved_model.load(str(tmp_path / 'plain')).signatures[
      'serving_default'](pixels=pixels)
  hot = tf.saved_model.load(str(tmp_path / 'hot')).signatures[
      'serving_default'](pixels=pixels)
  p = plain[signatures.PROBABILITIES].numpy()
  expected = np.exp(2 * np.log(np.clip(p, 1e-12, 1)))
  expected /= expected.sum(axis=1, keepdims=True)
  np.testing.assert_allclose(hot[signatures.PROBABILITIES], expected,
                             rtol=1e-4, atol=1e-5)
  np.testing.assert_array_equal(hot[signatures.CLASS_IDS],
                                plain[signatures.CLASS_IDS])
  assert hot[signatures.PROBABILITIES].numpy().max(axis=1).mean() > \
      p.max(axis=1).mean()
