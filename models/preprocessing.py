"""Transform's `preprocessing_fn`: the only place pixels are scaled.

The Transform graph is embedded in the exported SavedModel, so training, TFMA
and serving all apply exactly this function; nobody re-implements it.
"""

import tensorflow as tf
import tensorflow_transform as tft

from models import features


def preprocessing_fn(inputs):
  """Scales pixels to [0, 1], then standardizes with the dataset's mean/std.

  Scaling by the fixed domain (255) keeps the meaning of a pixel independent of
  the span; the z-score (a full-pass TFT analyzer over all pixels) centres the
  inputs for the CNN. The label passes through unchanged.
  """
  image = tf.cast(inputs[features.IMAGE_KEY], tf.float32) / features.PIXEL_MAX
  return {
      features.transformed_name(features.IMAGE_KEY):
          tft.scale_to_z_score(image),
      features.transformed_name(features.LABEL_KEY):
          inputs[features.LABEL_KEY],
  }
