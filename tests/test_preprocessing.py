"""Transform: pixels scaled to [0, 1] and standardized with the data's stats."""

import numpy as np
import tensorflow_transform as tft

from models import features


def test_preprocessing_standardizes_with_dataset_statistics(real_slice,
                                                            transform_dir):
  images, labels = real_slice
  out = tft.TFTransformOutput(transform_dir)
  raw = {features.IMAGE_KEY: images.reshape(-1, 784).astype(np.int64),
         features.LABEL_KEY: labels.astype(np.int64)}
  transformed = out.transform_raw_features(raw)
  x = transformed[features.transformed_name(features.IMAGE_KEY)].numpy()
  assert x.shape == (len(images), features.NUM_PIXELS)
  scaled = images.reshape(-1, 784) / 255.0
  expected = (scaled - scaled.mean()) / scaled.std()
  np.testing.assert_allclose(x, expected, rtol=1e-4, atol=1e-4)
  np.testing.assert_array_equal(
      transformed[features.transformed_name(features.LABEL_KEY)].numpy(), labels)
