"""The curated-vs-inferred schema diff a reviewer reads in the report."""

import os

from tfx.utils import io_utils

from pipeline import configs
from pipeline import report
from tensorflow_metadata.proto.v0 import schema_pb2


def test_schema_differences_name_what_differs():
  curated = io_utils.SchemaReader().read(
      os.path.join(configs.DEFAULT_SCHEMA_DIR, 'schema.pbtxt'))
  assert report.schema_differences(curated, curated) == []
  inferred = schema_pb2.Schema()
  inferred.CopyFrom(curated)
  image = next(f for f in inferred.feature if f.name == 'image')
  image.ClearField('int_domain')
  image.shape.dim[0].size = 1024
  extra = inferred.feature.add(name='brightness', type=schema_pb2.FLOAT)
  del extra
  diff = report.schema_differences(curated, inferred)
  assert "feature 'brightness': in the data, not in the curated schema" in diff
  assert any(d.startswith("feature 'image' shape: curated dim { size: 784 }")
             and 'size: 1024' in d for d in diff)
  assert any(d.startswith("feature 'image' int_domain:") and
             d.endswith('inferred (unset)') for d in diff)
  assert len(diff) == 3
