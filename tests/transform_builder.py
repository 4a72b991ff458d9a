"""Transform outputs made the way the pipeline's Transform makes them.

Fixtures that need a SavedModel run the real `preprocessing_fn` analyzers
through tft_beam on a handful of examples, then export with the real code:
the same signatures and embedded Transform graph as a pushed model, without
the minutes of a pipeline run.
"""

import os
import tempfile

import numpy as np


def write_transform_output(images: np.ndarray, labels: np.ndarray,
                           out_dir: str) -> str:
  """Analyzes int pixels [N, 784] and labels [N]; returns `out_dir`."""
  import apache_beam as beam  # pylint: disable=g-import-not-at-top
  from apache_beam.options.pipeline_options import PipelineOptions  # pylint: disable=g-import-not-at-top
  import tensorflow_transform as tft  # pylint: disable=g-import-not-at-top
  import tensorflow_transform.beam as tft_beam  # pylint: disable=g-import-not-at-top
  from tensorflow_transform.tf_metadata import dataset_metadata  # pylint: disable=g-import-not-at-top
  from tensorflow_transform.tf_metadata import metadata_io  # pylint: disable=g-import-not-at-top
  from tensorflow_transform.tf_metadata import schema_utils  # pylint: disable=g-import-not-at-top
  from models import features  # pylint: disable=g-import-not-at-top
  from models import preprocessing  # pylint: disable=g-import-not-at-top

  spec = features.raw_feature_spec()
  metadata = dataset_metadata.DatasetMetadata(
      schema_utils.schema_from_feature_spec(spec))
  rows = [{features.IMAGE_KEY: np.asarray(img, np.int64).reshape(-1),
           features.LABEL_KEY: int(lbl)} for img, lbl in zip(images, labels)]
  os.makedirs(out_dir, exist_ok=True)
  with beam.Pipeline(options=PipelineOptions([])) as p, tft_beam.Context(
      temp_dir=tempfile.mkdtemp(dir=out_dir)):
    transform_fn = ((p | beam.Create(rows, reshuffle=False), metadata)
                    | tft_beam.AnalyzeDataset(preprocessing.preprocessing_fn))
    _ = transform_fn | tft_beam.WriteTransformFn(out_dir)
  # The Transform component also records the raw schema; the export reads it.
  metadata_io.write_metadata(
      metadata, os.path.join(out_dir, tft.TFTransformOutput.RAW_METADATA_DIR))
  return out_dir
