"""The one place for feature keys, shapes and class names.

Pipeline, model, serving and monitoring all import these names, so a feature is
called the same thing everywhere (raw TFRecords, schema, Transform, signatures).
"""

IMAGE_KEY = 'image'
LABEL_KEY = 'label'

IMAGE_SIZE = 28
NUM_PIXELS = IMAGE_SIZE * IMAGE_SIZE
PIXEL_MAX = 255
NUM_CLASSES = 10

CLASS_NAMES = (
    'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat',
    'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
)

# ExampleGen splits: `eval` is held out of the official train set for early
# stopping; `test` is the official test set, used only by the Evaluator.
TRAIN_SPLIT = 'train'
EVAL_SPLIT = 'eval'
TEST_SPLIT = 'test'
SPLITS = (TRAIN_SPLIT, EVAL_SPLIT, TEST_SPLIT)


def transformed_name(key: str) -> str:
  """Name of a feature after Transform (`image` -> `image_xf`)."""
  return f'{key}_xf'


def raw_feature_spec():
  """The parsing spec of a raw record (what `fmnist ingest` writes).

  TensorFlow is imported here, not at the top: this module stays importable
  without it (the proxy's request validation, the CLI's fast paths).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return {IMAGE_KEY: tf.io.FixedLenFeature([NUM_PIXELS], tf.int64),
          LABEL_KEY: tf.io.FixedLenFeature([], tf.int64)}
