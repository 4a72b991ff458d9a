"""Loopback servers that speak TF Serving's, Vertex AI's and BigQuery's REST.

They answer with the real SavedModel, so a backend test checks the proxy's
wire format end to end, not a mock's idea of it. Each records the requests it
got, and can be made slow or failing.
"""

import json
import re
import time
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable, Dict, List, Optional

import numpy as np

import loopback  # tests/loopback.py  # pylint: disable=g-bad-import-order


class LoopbackServer(loopback.Loopback):
  """A threaded HTTP server on 127.0.0.1 with a routing function."""

  def __init__(self, route: Callable[[str, str, Any], tuple]):
    self.requests: List[Dict[str, Any]] = []
    self.delay_s = 0.0
    self.fail_status: Optional[int] = None
    outer = self

    class Handler(BaseHTTPRequestHandler):
      protocol_version = 'HTTP/1.1'

      def log_message(self, *args):  # keep pytest output clean
        pass

      def _handle(self, method):
        length = int(self.headers.get('content-length') or 0)
        raw = self.rfile.read(length) if length else b''
        body = json.loads(raw) if raw else None
        outer.requests.append({'method': method, 'path': self.path,
                               'body': body, 'headers': dict(self.headers)})
        if outer.delay_s:
          time.sleep(outer.delay_s)
        if outer.fail_status:
          status, payload = outer.fail_status, {'error': 'injected failure'}
        else:
          status, payload = route(method, self.path, body)
        data = json.dumps(payload).encode()
        try:
          self.send_response(status)
          self.send_header('content-type', 'application/json')
          self.send_header('content-length', str(len(data)))
          self.end_headers()
          self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
          pass  # the client gave up (a timeout test)

      def do_GET(self):
        self._handle('GET')

      def do_POST(self):
        self._handle('POST')

    super().__init__(Handler)


def _run(predict_fn, pixels) -> Dict[str, np.ndarray]:
  import tensorflow as tf
  out = predict_fn(pixels=tf.constant(np.asarray(pixels, np.float32)))
  return {k: v.numpy() for k, v in out.items()}


def _rows(out) -> list:
  return [{'probabilities': out['probabilities'][i].tolist(),
           'class_ids': int(out['class_ids'][i]),
           'class_names': out['class_names'][i].decode()}
          for i in range(len(out['class_ids']))]


def tfserving(predict_fn, model_name: str, version: int,
              labels: Optional[Dict[str, int]] = None) -> LoopbackServer:
  """TF Serving's REST API (predict, status, metadata) for one model.

  It serves `version` and every version a label points to (all with the
  same weights); `labels` maps version labels as TF Serving's model config
  does.
  """
  labels = labels or {}
  versions = sorted({version, *labels.values()})
  prefix = re.compile(
      rf'^/v1/models/(?P<name>[^/:]+)'
      rf'(?:/versions/(?P<v>\d+)|/labels/(?P<label>[^/:]+))?'
      rf'(?P<rest>:predict|/metadata)?$')

  def status(v):
    return {'version': str(v), 'state': 'AVAILABLE',
            'status': {'error_code': 'OK', 'error_message': ''}}

  def route(method, path, body):
    m = prefix.match(path)
    if not m:
      return 404, {'error': 'Malformed request'}
    if m['label'] is not None and m['label'] not in labels:
      return 400, {'error': 'Unrecognized servable version label: '
                            f'{m["label"]}'}
    v = int(m['v']) if m['v'] else labels.get(m['label'])
    if m['name'] != model_name or (v is not None and v not in versions):
      spec = (f'Specific({m["name"]}, {m["v"]})' if m['v'] else
              f'Latest({m["name"]})')
      return 404, {'error': f'Servable not found for request: {spec}'}
    if m['rest'] is None and method == 'GET':
      return 200, {'model_version_status': [
          status(x) for x in ([v] if v is not None else versions)]}
    if m['rest'] == '/metadata':
      return 200, {'model_spec': {'name': model_name, 'signature_name': '',
                                  'version': str(v or max(versions))},
                   'metadata': {'signature_def': {'signature_def': {}}}}
    if 'inputs' in body:
      inputs = body['inputs']
      pixels = inputs['pixels'] if isinstance(inputs, dict) else inputs
      out = _run(predict_fn, pixels)
      return 200, {'outputs': {
          'probabilities': out['probabilities'].tolist(),
          'class_ids': out['class_ids'].tolist(),
          'class_names': [n.decode() for n in out['class_names']]}}
    out = _run(predict_fn, [i['pixels'] if isinstance(i, dict) else i
                            for i in body['instances']])
    return 200, {'predictions': _rows(out)}

  return LoopbackServer(route)


VERTEX_IDS = {'deployedModelId': '7777', 'modelVersionId': '3',
              'modelDisplayName': 'fmnist'}


def vertex(predict_fn) -> LoopbackServer:
  """Vertex AI's REST `endpoints.predict` (and its error shape)."""
  path_re = re.compile(
      r'^/v1/projects/(?P<p>[^/]+)/locations/(?P<l>[^/]+)/endpoints/'
      r'(?P<e>[^/:]+):predict')

  def route(method, path, body):
    m = path_re.match(path)
    if method != 'POST' or not m:
      return 404, {'error': {'code': 404, 'message': 'not found',
                             'status': 'NOT_FOUND'}}
    if m['e'] == 'missing':
      return 404, {'error': {'code': 404, 'status': 'NOT_FOUND',
                             'message': f'Endpoint {m["e"]} not found.'}}
    out = _run(predict_fn, body['instances'])
    return 200, {'predictions': _rows(out),
                 'model': f'projects/{m["p"]}/locations/{m["l"]}/models/456',
                 **VERTEX_IDS}

  return LoopbackServer(route)


def bigquery() -> LoopbackServer:
  """BigQuery's `tabledata.insertAll`; rows land in `server.rows`."""
  server = None

  def route(method, path, body):
    if method == 'POST' and path.split('?')[0].endswith('/insertAll'):
      server.rows.extend(r['json'] for r in body['rows'])
      return 200, {'kind': 'bigquery#tableDataInsertAllResponse'}
    return 404, {'error': {'code': 404, 'message': path}}

  server = LoopbackServer(route)
  server.rows = []
  return server


class GrpcTFServing:
  """TF Serving's gRPC PredictionService + ModelService on 127.0.0.1.

  Real grpc server, real tensorflow_serving protos; answers with the real
  SavedModel. Same knobs as the REST fake: `delay_s`, `requests`, labels.
  """

  def __init__(self, predict_fn, model_name: str, version: int,
               labels: Optional[Dict[str, int]] = None):
    self._predict_fn = predict_fn
    self._model = model_name
    self._labels = labels or {}
    self._versions = sorted({version, *self._labels.values()})
    self.requests: List[Any] = []
    self.delay_s = 0.0
    self._server = None
    self.url = ''

  def _resolve(self, spec, context):
    import grpc
    self.requests.append(spec)
    if self.delay_s:
      time.sleep(self.delay_s)
    if spec.version_label and spec.version_label not in self._labels:
      context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                    f'Unrecognized servable version label: {spec.version_label}')
    v = (spec.version.value if spec.HasField('version') else
         self._labels.get(spec.version_label) if spec.version_label else None)
    if spec.name != self._model or (v is not None and v not in self._versions):
      what = (f'Specific({spec.name}, {v})' if v is not None else
              f'Latest({spec.name})')
      context.abort(grpc.StatusCode.NOT_FOUND,
                    f'Servable not found for request: {what}')
    return v if v is not None else max(self._versions)

  def __enter__(self):
    from concurrent import futures
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import get_model_metadata_pb2
    from tensorflow_serving.apis import get_model_status_pb2
    from tensorflow_serving.apis import model_service_pb2_grpc
    from tensorflow_serving.apis import predict_pb2
    from tensorflow_serving.apis import prediction_service_pb2_grpc
    outer = self

    class Prediction(prediction_service_pb2_grpc.PredictionServiceServicer):

      def Predict(self, request, context):  # pylint: disable=invalid-name
        v = outer._resolve(request.model_spec, context)
        pixels = tf.make_ndarray(request.inputs['pixels'])
        out = _run(outer._predict_fn, pixels.astype(np.float32))
        response = predict_pb2.PredictResponse()
        response.model_spec.name = outer._model
        response.model_spec.version.value = v
        response.model_spec.signature_name = request.model_spec.signature_name
        for key, value in out.items():
          response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
        return response

      def GetModelMetadata(self, request, context):  # pylint: disable=invalid-name
        v = outer._resolve(request.model_spec, context)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = outer._model
        response.model_spec.version.value = v
        defs = get_model_metadata_pb2.SignatureDefMap()
        defs.signature_def['serving_default'].method_name = (
            'tensorflow/serving/predict')
        response.metadata['signature_def'].Pack(defs)
        return response

    class Models(model_service_pb2_grpc.ModelServiceServicer):

      def GetModelStatus(self, request, context):  # pylint: disable=invalid-name
        v = outer._resolve(request.model_spec, context)
        versions = ([v] if request.model_spec.HasField('version') or
                    request.model_spec.version_label else outer._versions)
        response = get_model_status_pb2.GetModelStatusResponse()
        for x in versions:
          entry = response.model_version_status.add(
              version=x, state=get_model_status_pb2.ModelVersionStatus.AVAILABLE)
          entry.status.SetInParent()  # error_code OK, as TF Serving sends
        return response

    self._server = grpc.server(futures.ThreadPoolExecutor(4))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        Prediction(), self._server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(
        Models(), self._server)
    port = self._server.add_insecure_port('127.0.0.1:0')
    self._server.start()
    self.url = f'grpc://127.0.0.1:{port}'
    return self

  def __exit__(self, *exc):
    self._server.stop(grace=None)
