"""Loopback servers that speak TF Serving's, Vertex AI's and BigQuery's REST.

They answer with the real SavedModel, so a backend test checks the proxy's
wire format end to end, not a mock's idea of it. Each records the requests it
got, and can be made slow or failing.
"""

import datetime
import json
import re
import threading
import time
import urllib.parse
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


# The request-log table (serving/bigquery_schema.json), as the REST API names
# its columns and types.
_BQ_SCHEMA = [
    {'name': 'endpoint', 'type': 'STRING', 'mode': 'NULLABLE'},
    {'name': 'deployed_model_id', 'type': 'STRING', 'mode': 'NULLABLE'},
    {'name': 'logging_time', 'type': 'TIMESTAMP', 'mode': 'NULLABLE'},
    {'name': 'request_id', 'type': 'NUMERIC', 'mode': 'NULLABLE'},
    {'name': 'request_payload', 'type': 'STRING', 'mode': 'REPEATED'},
    {'name': 'response_payload', 'type': 'STRING', 'mode': 'REPEATED'},
]
# The one query shape the fake runs (the monitor's, monitoring/bigquery_logs.py);
# anything else is answered 400 invalidQuery, so a changed query fails loudly.
_BQ_QUERY = re.compile(
    r'^\s*SELECT\s+(?P<columns>\w+(?:\s*,\s*\w+)*)\s+'
    r'FROM\s+`(?P<table>[^`]+)`\s*'
    r'(?:WHERE\s+logging_time\s*>=\s*@(?P<since>\w+)\s*)?'
    r'ORDER\s+BY\s+logging_time(?:\s+(?P<order>ASC|DESC))?\s*$', re.I)


def _bq_error(status: int, reason: str, message: str) -> tuple:
  """BigQuery's error body (what google.api_core turns into exceptions)."""
  statuses = {400: 'INVALID_ARGUMENT', 403: 'PERMISSION_DENIED',
              404: 'NOT_FOUND'}
  return status, {'error': {
      'code': status, 'message': message, 'status': statuses.get(status, ''),
      'errors': [{'message': message, 'domain': 'global', 'reason': reason}]}}


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def _bq_time(text: str) -> datetime.datetime:
  t = datetime.datetime.fromisoformat(str(text).strip().replace('Z', '+00:00'))
  return t if t.tzinfo else t.replace(tzinfo=datetime.timezone.utc)


def _bq_cell(value, field: Dict[str, str]) -> Dict[str, Any]:
  """One `f[i]` cell as jobs.query returns it (timestamps as int64 micros)."""
  if field['mode'] == 'REPEATED':
    return {'v': [{'v': str(v)} for v in value or []]}
  if value is None:
    return {'v': None}
  if field['type'] == 'TIMESTAMP':
    since_epoch = _bq_time(value) - _EPOCH
    return {'v': str(since_epoch // datetime.timedelta(microseconds=1))}
  return {'v': str(value)}


def bigquery(tables: Optional[List[str]] = None, forbidden: tuple = (),
             page_rows: int = 100) -> LoopbackServer:
  """BigQuery's REST API for the request-log table, writes and reads.

  `tabledata.insertAll` appends to `server.rows` (every table) and to
  `server.tables[PROJECT.DATASET.TABLE]`. Reads are the calls the real client's
  `query_and_wait` makes: `jobs.query` (first page, named parameters), then
  `jobs.get` and `jobs.getQueryResults` with `pageToken` for later pages of
  `page_rows` rows (or the client's `maxResults`). The query must be the
  monitor's shape; `@since` is applied. `tables` names the tables that exist
  (default: any); another is a 404 as BigQuery answers it, one of `forbidden`
  a 403 on query.
  """
  server = None
  lock = threading.Lock()
  prefix = '/bigquery/v2/projects/'

  def table_id(path):
    m = re.match(r'^([^/]+)/datasets/([^/]+)/tables/([^/]+)/insertAll$', path)
    return '.'.join(m.groups()) if m else None

  def known(table):
    return tables is None or table in tables

  def not_found(table):
    p, d, t = table.split('.')
    return _bq_error(404, 'notFound', f'Not found: Table {p}:{d}.{t} was not '
                     'found in location US')

  def run_query(project, body):
    m = _BQ_QUERY.match(body.get('query', ''))
    if not m or body.get('useLegacySql', True):
      return _bq_error(400, 'invalidQuery',
                       f'the fake runs only the monitor\'s query: {body!r}')
    table = m['table']
    if table.count('.') != 2:
      return _bq_error(400, 'invalid', f'Invalid table name: {table}')
    if table in forbidden:
      p, d, t = table.split('.')
      return _bq_error(403, 'accessDenied',
                       f'Access Denied: Table {p}:{d}.{t}: User does not have '
                       f'permission to query table {p}:{d}.{t}, or perhaps it '
                       'does not exist.')
    if not known(table):
      return not_found(table)
    fields = {f['name']: f for f in _BQ_SCHEMA}
    columns = [c.strip() for c in m['columns'].split(',')]
    for c in columns:
      if c not in fields:
        return _bq_error(400, 'invalidQuery', f'Unrecognized name: {c}')
    params = {p['name']: p for p in body.get('queryParameters', [])}
    since = m['since']
    if since and (since not in params or
                  params[since]['parameterType']['type'] != 'TIMESTAMP'):
      return _bq_error(400, 'invalidQuery',
                       f'Query parameter \'{since}\' not found')
    with lock:
      rows = list(server.tables.get(table, []))
    if since:
      start = _bq_time(params[since]['parameterValue']['value'])
      rows = [r for r in rows if r.get('logging_time') is not None and
              _bq_time(r['logging_time']) >= start]
    # Python's sort is stable: equal times keep their insert order.
    rows.sort(key=lambda r: _bq_time(r.get('logging_time') or '1970-01-01'),
              reverse=(m['order'] or 'ASC').upper() == 'DESC')
    schema = {'fields': [fields[c] for c in columns]}
    encoded = [{'f': [_bq_cell(r.get(c), fields[c]) for c in columns]}
               for r in rows]
    with lock:
      server.job_count += 1
      job_id = f'job_{server.job_count}'
      server.jobs[job_id] = {'project': project, 'schema': schema,
                             'rows': encoded, 'query': body['query']}
    return 200, dict(page(job_id, 0, body.get('maxResults')),
                     kind='bigquery#queryResponse')

  def page(job_id, start, max_results):
    job = server.jobs[job_id]
    size = page_rows if max_results is None else min(page_rows,
                                                     int(max_results))
    rows = job['rows'][start:start + size]
    out = {'jobReference': {'projectId': job['project'], 'jobId': job_id,
                            'location': 'US'},
           'schema': job['schema'], 'totalRows': str(len(job['rows'])),
           'rows': rows, 'jobComplete': True, 'cacheHit': False,
           'totalBytesProcessed': '0'}
    if size and start + size < len(job['rows']):
      out['pageToken'] = str(start + size)
    return out

  def job_resource(job_id):
    job = server.jobs[job_id]
    now = str(int(time.time() * 1000))
    return {'kind': 'bigquery#job', 'id': f'{job["project"]}:US.{job_id}',
            'jobReference': {'projectId': job['project'], 'jobId': job_id,
                             'location': 'US'},
            'configuration': {'jobType': 'QUERY', 'query': {
                'query': job['query'], 'useLegacySql': False,
                'destinationTable': {'projectId': job['project'],
                                     'datasetId': '_anon',
                                     'tableId': f'anon_{job_id}'}}},
            'status': {'state': 'DONE'},
            'statistics': {'creationTime': now, 'startTime': now,
                           'endTime': now, 'query': {
                               'statementType': 'SELECT',
                               'totalBytesProcessed': '0'}}}

  def route(method, path, body):
    url = urllib.parse.urlsplit(path)
    query = dict(urllib.parse.parse_qsl(url.query))
    if not url.path.startswith(prefix):
      return _bq_error(404, 'notFound', f'Not found: URL {url.path}')
    rest = url.path[len(prefix):]
    project = rest.split('/')[0]
    if method == 'POST' and rest.endswith('/insertAll'):
      table = table_id(rest)
      if table is None:
        return _bq_error(404, 'notFound', f'Not found: URL {url.path}')
      if not known(table):
        return not_found(table)
      with lock:
        inserted = [r['json'] for r in body['rows']]
        server.rows.extend(inserted)
        server.tables.setdefault(table, []).extend(inserted)
      return 200, {'kind': 'bigquery#tableDataInsertAllResponse'}
    if method == 'POST' and rest == f'{project}/queries':
      return run_query(project, body)
    m = re.match(r'^[^/]+/(queries|jobs)/([^/]+)$', rest)
    if method == 'GET' and m and m[2] in server.jobs:
      if m[1] == 'jobs':
        return 200, job_resource(m[2])
      return 200, dict(page(m[2], int(query.get('pageToken', 0)),
                            query.get('maxResults')),
                       kind='bigquery#getQueryResultsResponse')
    if m:
      return _bq_error(404, 'notFound', f'Not found: Job {project}:{m[2]}')
    return _bq_error(404, 'notFound', f'Not found: URL {url.path}')

  server = LoopbackServer(route)
  server.rows = []
  server.tables = {}
  server.jobs = {}
  server.job_count = 0
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
