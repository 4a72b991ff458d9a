"""A TF Serving model server over gRPC (`--tfserving-url grpc://HOST:8500`).

The batch travels as one binary TensorProto instead of JSON numbers, and the
PredictResponse names the version that answered, so no status lookups are
needed. gRPC status codes map onto the same errors the REST backend raises.
"""

from typing import Any, Dict, Optional

import numpy as np

from serving import errors
from serving.backends import base

# The dtype each signature's `pixels` input declares (models/signatures.py).
_INPUT_DTYPES = {'serving_default': np.float32, 'serving_uint8': np.uint8}


class TFServingGrpcBackend(base.Backend):
  """Calls PredictionService and ModelService at `config.tfserving_url`."""

  name = 'tfserving'
  supports_labels = True

  def __init__(self, config):
    self._url = config.tfserving_url
    self._target = config.tfserving_url[len('grpc://'):].rstrip('/')
    self._model = config.model_name
    self._timeout = config.backend_timeout_s
    self._channel = None
    self._predict_stub = None
    self._model_stub = None

  async def start(self) -> None:
    import grpc  # pylint: disable=g-import-not-at-top
    from tensorflow_serving.apis import model_service_pb2_grpc  # pylint: disable=g-import-not-at-top
    from tensorflow_serving.apis import prediction_service_pb2_grpc  # pylint: disable=g-import-not-at-top
    # TF Serving's own limit; a 64-image batch is ~200 KB.
    self._channel = grpc.aio.insecure_channel(
        self._target, options=[('grpc.max_receive_message_length', 64 << 20)])
    self._predict_stub = prediction_service_pb2_grpc.PredictionServiceStub(
        self._channel)
    self._model_stub = model_service_pb2_grpc.ModelServiceStub(self._channel)

  async def close(self) -> None:
    if self._channel is not None:
      await self._channel.close()

  def _spec(self, spec, version: Optional[str], label: Optional[str],
            signature: str = '') -> None:
    spec.name = self._model
    if signature:
      spec.signature_name = signature
    if version is not None:
      spec.version.value = int(version)
    elif label is not None:
      spec.version_label = label

  async def _call(self, rpc, request):
    import grpc  # pylint: disable=g-import-not-at-top
    try:
      return await rpc(request, timeout=self._timeout)
    except grpc.aio.AioRpcError as e:
      code, message = e.code(), e.details() or str(e.code())
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
      raise errors.BackendTimeout(
          f'TF Serving at {self._url} did not answer within {self._timeout:g}s',
          kind='backend_timeout')
    if code == grpc.StatusCode.UNAVAILABLE:
      raise errors.BackendUnavailable(
          f'TF Serving at {self._url} is not reachable or unavailable '
          f'({message}); is the model server running?', kind='backend_down')
    if code == grpc.StatusCode.NOT_FOUND:
      raise errors.NotFound(message, kind='unknown_version')
    if code in (grpc.StatusCode.INVALID_ARGUMENT,
                grpc.StatusCode.FAILED_PRECONDITION,
                grpc.StatusCode.OUT_OF_RANGE):
      raise errors.InvalidInput(f'TF Serving rejected the request: {message}',
                                kind='backend_rejected')
    raise errors.BackendError(f'TF Serving answered {code.name}: {message}')

  async def predict(self, pixels: np.ndarray, version: Optional[str] = None,
                    signature: str = 'serving_default',
                    label: Optional[str] = None) -> base.Prediction:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from tensorflow_serving.apis import predict_pb2  # pylint: disable=g-import-not-at-top
    request = predict_pb2.PredictRequest()
    self._spec(request.model_spec, version, label, signature)
    request.inputs['pixels'].CopyFrom(tf.make_tensor_proto(
        np.asarray(pixels, _INPUT_DTYPES[signature])))
    response = await self._call(self._predict_stub.Predict, request)
    outputs = {k: tf.make_ndarray(v) for k, v in response.outputs.items()}
    if 'probabilities' not in outputs or 'class_ids' not in outputs:
      raise errors.BackendError(
          'TF Serving answered without the expected outputs (is the model '
          'exported with models.signatures?)')
    return base.Prediction.from_outputs(
        outputs, str(response.model_spec.version.value))

  async def status(self, version: Optional[str] = None,
                   label: Optional[str] = None) -> Dict[str, Any]:
    from google.protobuf import json_format  # pylint: disable=g-import-not-at-top
    from tensorflow_serving.apis import get_model_status_pb2  # pylint: disable=g-import-not-at-top
    request = get_model_status_pb2.GetModelStatusRequest()
    self._spec(request.model_spec, version, label)
    response = await self._call(self._model_stub.GetModelStatus, request)
    # The REST API's JSON for the same message (int64 as strings, enum names).
    status = json_format.MessageToDict(
        response, preserving_proto_field_name=True,
        including_default_value_fields=True)
    for entry in status['model_version_status']:
      entry.setdefault('status', {'error_code': 'OK', 'error_message': ''})
    return status

  async def metadata(self, version: Optional[str] = None,
                     label: Optional[str] = None) -> Dict[str, Any]:
    from google.protobuf import json_format  # pylint: disable=g-import-not-at-top
    from tensorflow_serving.apis import get_model_metadata_pb2  # pylint: disable=g-import-not-at-top
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    self._spec(request.model_spec, version, label)
    request.metadata_field.append('signature_def')
    response = await self._call(self._predict_stub.GetModelMetadata, request)
    defs = get_model_metadata_pb2.SignatureDefMap()
    response.metadata['signature_def'].Unpack(defs)
    return {'model_spec': json_format.MessageToDict(
                response.model_spec, preserving_proto_field_name=True),
            'metadata': {'signature_def': json_format.MessageToDict(
                defs, preserving_proto_field_name=True)}}
