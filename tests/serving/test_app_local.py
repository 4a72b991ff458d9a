"""The app on the local backend, over HTTP (Starlette's httpx-based client)."""

import base64
import glob
import gzip
import json
import os
import threading
import time

import numpy as np
import pytest

from models import features
from serving import imaging
from serving.backends import base

from model_fixture import direct, make_config, push  # pylint: disable=g-bad-import-order

PREDICT = '/v1/models/fmnist:predict'
VERTEX = '/v1/projects/p/locations/us-central1/endpoints/123:predict'


def png(img) -> bytes:
  return imaging.encode_png(img)


def b64(img) -> str:
  return base64.b64encode(png(img)).decode()


def test_health_and_readiness(local_client):
  assert local_client.get('/healthz').json() == {'status': 'ok'}
  r = local_client.get('/readyz')
  assert r.status_code == 200 and r.json()['status'] == 'ready'


def test_keras_shaped_images_with_a_channel_axis(local_client, predict_fn,
                                                 images):
  # x_test[..., None] (28x28x1), as Keras users hold images; the SavedModel
  # behind TF Serving takes it, so the proxy does too. 28x28x2 is no image.
  want = direct(predict_fn, images[:3])['class_ids'].tolist()
  for arr in (images[:3, :, :, None], images[:3, None, :, :]):
    for path in (PREDICT, VERTEX):
      r = local_client.post(path, json={'instances': arr.tolist()})
      assert r.status_code == 200, r.text
      assert [p['class_ids'] for p in r.json()['predictions']] == want
  r = local_client.post('/predict',
                        json={'pixels': images[0][:, :, None].tolist()})
  assert r.status_code == 200 and r.json()['class_id'] == want[0]
  r = local_client.post(PREDICT, json={'instances': np.repeat(
      images[:1, :, :, None], 2, axis=3).tolist()})
  assert r.status_code == 400 and 'got shape [28, 28, 2]' in r.json()['error']


def test_same_predictions_as_the_savedmodel(local_client, predict_fn, images):
  """Proxy (JSON rows, PNG upload, Vertex b64) == SavedModel called directly."""
  want = direct(predict_fn, images)
  r = local_client.post(PREDICT, json={'instances': images.tolist()})
  assert r.status_code == 200, r.text
  preds = r.json()['predictions']
  assert [p['class_ids'] for p in preds] == want['class_ids'].tolist()
  assert [p['class_names'] for p in preds] == [
      n.decode() for n in want['class_names']]
  np.testing.assert_allclose([p['probabilities'] for p in preds],
                             want['probabilities'], rtol=0, atol=1e-6)
  for i, img in enumerate(images[:4]):
    r = local_client.post('/predict', files={'file': ('x.png', png(img),
                                                      'image/png')})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body['class_id'] == want['class_ids'][i]
    assert body['class_name'] == want['class_names'][i].decode()
    assert body['model_version'] == '1' and body['model_name'] == 'fmnist'
    np.testing.assert_allclose(body['probabilities'], want['probabilities'][i],
                               atol=1e-6)
  r = local_client.post(VERTEX, json={'instances': [
      {'b64': b64(img)} for img in images[:5]]})
  assert [p['class_ids'] for p in r.json()['predictions']] == (
      want['class_ids'][:5].tolist())


def test_friendly_route_accepts_every_documented_body(local_client, predict_fn,
                                                      images):
  img = images[3]
  want = int(direct(predict_fn, img[None])['class_ids'][0])
  bodies = [
      dict(files={'file': ('a.png', png(img), 'image/png')}),
      dict(content=png(img), headers={'content-type': 'image/png'}),
      dict(json={'pixels': img.tolist()}),
      dict(json={'pixels': img.reshape(-1).tolist()}),
      dict(json={'pixels': {'b64': b64(img)}}),
  ]
  for kwargs in bodies:
    r = local_client.post('/predict', **kwargs)
    assert r.status_code == 200, (kwargs.keys(), r.text)
    assert r.json()['class_id'] == want
    assert len(r.json()['probabilities']) == features.NUM_CLASSES


def test_tfserving_formats_and_shapes(local_client, predict_fn, images):
  want = direct(predict_fn, images[:3])
  flat = images[:3].reshape(3, -1).tolist()
  row_bodies = [
      {'instances': flat},
      {'instances': [{'pixels': p} for p in images[:3].tolist()]},
      {'instances': [{'b64': b64(i)} for i in images[:3]]},
      {'instances': [{'pixels': {'b64': b64(i)}} for i in images[:3]]},
      {'signature_name': 'serving_uint8', 'instances': flat},
  ]
  for body in row_bodies:
    r = local_client.post(PREDICT, json=body)
    assert r.status_code == 200, r.text
    assert r.headers['x-model-version'] == '1'
    preds = r.json()['predictions']
    assert set(preds[0]) == {'probabilities', 'class_ids', 'class_names'}
    assert [p['class_ids'] for p in preds] == want['class_ids'].tolist()
  for body in ({'inputs': flat}, {'inputs': {'pixels': flat}},
               {'inputs': {'pixels': [{'b64': b64(i)} for i in images[:3]]}}):
    r = local_client.post(PREDICT, json=body)
    assert r.status_code == 200, r.text
    out = r.json()['outputs']
    assert out['class_ids'] == want['class_ids'].tolist()
    assert np.asarray(out['probabilities']).shape == (3, 10)
  r = local_client.post('/v1/models/fmnist/versions/1:predict',
                        json={'instances': flat})
  assert r.status_code == 200


def test_status_and_metadata_shapes(local_client):
  status = {'model_version_status': [{
      'version': '1', 'state': 'AVAILABLE',
      'status': {'error_code': 'OK', 'error_message': ''}}]}
  assert local_client.get('/v1/models/fmnist').json() == status
  assert local_client.get('/v1/models/fmnist/versions/1').json() == status
  meta = local_client.get('/v1/models/fmnist/metadata').json()
  assert meta['model_spec'] == {'name': 'fmnist', 'signature_name': '',
                                'version': '1'}
  sig = meta['metadata']['signature_def']['signature_def']['serving_default']
  assert set(sig['inputs']) == {'pixels'}
  assert sig['inputs']['pixels']['dtype'] == 'DT_FLOAT'
  assert set(sig['outputs']) == {'probabilities', 'class_ids', 'class_names'}
  assert 'serving_uint8' in meta['metadata']['signature_def']['signature_def']


def test_vertex_route_shape(local_client, images):
  r = local_client.post(VERTEX, json={
      'instances': [images[0].tolist()], 'parameters': {}})
  assert r.status_code == 200, r.text
  body = r.json()
  assert set(body) == {'predictions', 'deployedModelId', 'model',
                       'modelDisplayName', 'modelVersionId'}
  assert body['model'] == 'projects/p/locations/us-central1/models/fmnist'
  assert body['modelVersionId'] == '1' and body['deployedModelId'] == 'local'


def _truncated_png(img):
  data = png(img)
  return data[:len(data) // 2]


def _bad_cases(images):
  img = images[0]
  good = img.tolist()
  nan = img.astype(float).tolist()
  nan[3][3] = float('nan')
  return [
      # (name, method, path, kwargs, status, kind, substring)
      ('not an image', '/predict',
       dict(files={'file': ('a.png', b'hello, not a png', 'image/png')}),
       400, 'not_an_image', 'not a PNG or JPEG'),
      ('truncated png', '/predict',
       dict(content=_truncated_png(img), headers={'content-type': 'image/png'}),
       400, 'corrupt_image', 'could not be decoded'),
      ('gif', '/predict', dict(content=b'GIF89a' + b'\0' * 20,
                               headers={'content-type': 'image/png'}),
       400, 'not_an_image', None),
      ('multipart without file', '/predict', dict(data={'x': '1'}, files={
          'other': ('a.png', png(img), 'image/png')}),
       400, 'missing_file', 'named "file"'),
      ('unsupported type', '/predict',
       dict(content=b'x', headers={'content-type': 'text/plain'}),
       415, 'unsupported_media_type', 'text/plain'),
      ('wrong shape', PREDICT, dict(json={'instances': [[1, 2, 3]]}),
       400, 'wrong_shape', '784'),
      ('ragged rows', PREDICT, dict(json={'instances': [[[1] * 28] * 27 + [[1]]]}),
       400, 'wrong_shape', None),
      ('strings', PREDICT, dict(json={'instances': [['a'] * 784]}),
       400, 'not_numbers', None),
      ('out of range', PREDICT, dict(json={'instances': [[300] * 784]}),
       400, 'out_of_range', '[0, 255]'),
      ('negative', '/predict', dict(json={'pixels': [-1] * 784}),
       400, 'out_of_range', None),
      # Past int64: numpy cannot hold it, but it is a number, too large.
      ('huge integers', PREDICT, dict(json={'instances': [[10**23] * 784]}),
       400, 'out_of_range', '[0, 255]'),
      ('one huge integer', PREDICT, dict(json={'instances': [[0] * 783 + [2**70]]}),
       400, 'out_of_range', '[0, 255]'),
      ('NaN', PREDICT, dict(content=json.dumps({'instances': [nan]}),
                            headers={'content-type': 'application/json'}),
       400, 'not_finite', 'NaN'),
      ('too many instances', PREDICT, dict(json={'instances': [good] * 17}),
       400, 'too_many_instances', 'at most 16'),
      ('empty', PREDICT, dict(json={'instances': []}), 400, 'wrong_shape', None),
      ('both formats', PREDICT, dict(json={'instances': [good], 'inputs': [good]}),
       400, 'malformed_request', 'exactly one'),
      ('unknown input', PREDICT, dict(json={'instances': [{'image': good}]}),
       400, 'unknown_input', '"pixels"'),
      ('uint8 fractions', PREDICT, dict(json={
          'signature_name': 'serving_uint8', 'instances': [[0.5] * 784]}),
       400, 'not_integers', None),
      ('unknown signature', PREDICT, dict(json={
          'signature_name': 'nope', 'instances': [good]}),
       400, 'unknown_signature', 'not found in signature def'),
      ('bad base64', PREDICT, dict(json={'instances': [{'b64': '%%%'}]}),
       400, 'bad_base64', None),
      ('malformed JSON', PREDICT, dict(content=b'{"instances": [1,',
                                       headers={'content-type': 'application/json'}),
       400, 'malformed_json', 'malformed JSON'),
      ('malformed JSON friendly', '/predict', dict(
          content=b'{"pixels":', headers={'content-type': 'application/json'}),
       400, 'malformed_json', None),
      ('unknown model', '/v1/models/mnist:predict',
       dict(json={'instances': [good]}), 404, 'unknown_model',
       'Servable not found'),
      ('unknown version', '/v1/models/fmnist/versions/9:predict',
       dict(json={'instances': [good]}), 404, 'unknown_version', None),
      ('non-numeric version', '/v1/models/fmnist/versions/x:predict',
       dict(json={'instances': [good]}), 400, 'bad_version', None),
      ('version label', '/v1/models/fmnist/labels/stable:predict',
       dict(json={'instances': [good]}), 400, 'unknown_label',
       'Unrecognized servable version label: stable'),
      ('vertex without instances', VERTEX, dict(json={'inputs': [good]}),
       400, 'malformed_request', None),
      ('vertex out of range', VERTEX, dict(json={'instances': [[999] * 784]}),
       400, 'out_of_range', None),
      # Found by fuzzing (issue 13): json.loads' RecursionError was a 500.
      ('nested 100,000 deep', PREDICT, dict(
          content=b'[' * 100_000 + b']' * 100_000,
          headers={'content-type': 'application/json'}),
       400, 'malformed_json', 'nested too deeply'),
      ('nested 100,000 deep, unclosed', VERTEX, dict(
          content=b'{"instances":' + b'[' * 100_000,
          headers={'content-type': 'application/json'}),
       400, None, 'nested too deeply'),
      ('nested 100,000 deep friendly', '/predict', dict(
          content=b'{"pixels":' + b'[' * 100_000 + b']' * 100_000 + b'}',
          headers={'content-type': 'application/json'}),
       400, 'malformed_json', 'nested too deeply'),
      ('nested 900 deep instances', PREDICT, dict(
          content=b'{"instances":' + b'[' * 900 + b'1' + b']' * 900 + b'}',
          headers={'content-type': 'application/json'}),
       400, None, None),
      # Found by schemathesis: Starlette's own 400 inside a route was a 500.
      ('multipart with several fields', '/predict', dict(
          data={'a': '1', 'b': '2'},
          files={'file': ('a.png', png(img), 'image/png')}),
       400, 'http', 'Too many fields'),
  ]


def test_bad_input_gets_an_actionable_json_error(local_client, images):
  for name, path, kwargs, status, kind, text in _bad_cases(images):
    r = local_client.post(path, **kwargs)
    assert r.status_code == status, (name, r.status_code, r.text)
    assert r.headers['content-type'] == 'application/json', name
    body = r.json()
    if path == '/predict':
      if kind:
        assert body['kind'] == kind, (name, body)
      assert body['request_id'] == r.headers['x-request-id']
      message = body['error']
    elif path.startswith('/v1/projects'):
      assert body['error']['code'] == status, name
      assert body['error']['status'] in ('INVALID_ARGUMENT', 'NOT_FOUND')
      message = body['error']['message']
    else:
      assert set(body) == {'error'}, (name, body)  # TF Serving's shape
      message = body['error']
    assert 'Traceback' not in message, name
    if text:
      assert text in message, (name, message)
  metrics = local_client.get('/metrics').text
  for kind in ('not_an_image', 'corrupt_image', 'not_finite',
               'too_many_instances', 'malformed_json', 'unknown_model'):
    assert f'fmnist_errors_total{{kind="{kind}"}}' in metrics, kind
  # ...and the server keeps serving.
  assert local_client.post(PREDICT, json={
      'instances': [images[0].tolist()]}).status_code == 200


def test_body_limit_declared_and_streamed(make_client, images):
  client = make_client(max_body_bytes=4096)
  big = json.dumps({'instances': [images[0].tolist()] * 8}).encode()
  assert len(big) > 4096
  r = client.post(PREDICT, content=big,
                  headers={'content-type': 'application/json'})
  assert r.status_code == 413 and 'larger than 4096 bytes' in r.json()['error']

  def chunks():  # no content-length: counted as it streams
    for i in range(0, len(big), 1000):
      yield big[i:i + 1000]
  r = client.post(PREDICT, content=chunks(),
                  headers={'content-type': 'application/json'})
  assert r.status_code == 413, r.text
  assert set(r.json()) == {'error'}
  r = client.post('/predict', files={'file': ('a.png', b'\0' * 5000,
                                              'image/png')})
  assert r.status_code == 413 and r.json()['kind'] == 'body_too_large'
  assert client.post(PREDICT, json={
      'instances': [images[0].tolist()]}).status_code == 200


def test_gzip_bodies_are_inflated_within_the_limit(make_client, images):
  # TF Serving's REST API takes Content-Encoding: gzip; the limit applies to
  # the inflated body, so a small compressed one cannot expand unbounded.
  client = make_client(max_body_bytes=64 * 1024)
  body = json.dumps({'instances': [images[0].tolist()] * 4}).encode()
  packed = gzip.compress(body)
  plain = client.post(PREDICT, content=body,
                      headers={'content-type': 'application/json'}).json()
  for path in (PREDICT, VERTEX):
    r = client.post(path, content=packed, headers={
        'content-type': 'application/json', 'content-encoding': 'gzip'})
    assert r.status_code == 200, r.text
    assert r.json()['predictions'] == plain['predictions']

  def chunks(data):  # streamed, no content-length
    for i in range(0, len(data), 100):
      yield data[i:i + 100]
  r = client.post(PREDICT, content=chunks(packed), headers={
      'content-type': 'application/json', 'content-encoding': 'gzip'})
  assert r.status_code == 200, r.text
  bomb = gzip.compress(b'[' + b'0,' * 5_000_000 + b'0]')
  assert len(bomb) < 64 * 1024
  for content in (bomb, chunks(bomb)):
    r = client.post(PREDICT, content=content, headers={
        'content-type': 'application/json', 'content-encoding': 'gzip'})
    assert r.status_code == 413 and 'larger than 65536 bytes' in r.text
  for content, text in ((body, 'not valid gzip'),
                        (packed[:len(packed) // 2], 'ends before')):
    r = client.post('/predict', content=content, headers={
        'content-type': 'application/json', 'content-encoding': 'gzip'})
    assert r.status_code == 400 and r.json()['kind'] == 'malformed_gzip'
    assert text in r.json()['error']
  r = client.post(VERTEX, content=body, headers={
      'content-type': 'application/json', 'content-encoding': 'br'})
  assert r.status_code == 415
  assert 'Content-Encoding "br"' in r.json()['error']['message']
  assert client.post(PREDICT, json={
      'instances': [images[0].tolist()]}).status_code == 200


def test_unknown_routes_and_methods_are_json(local_client):
  r = local_client.get('/nope')
  assert r.status_code == 404 and 'error' in r.json()
  r = local_client.post('/v1/models/fmnist')
  assert r.status_code == 405 and set(r.json()) == {'error'}
  # Under a Vertex path the body is Google's error shape, with the
  # client's mistake named as such (not INTERNAL, a server fault).
  vertex = '/v1/projects/p/locations/l/endpoints/1'
  r = local_client.post(f'{vertex}:explain', json={'instances': []})
  assert r.status_code == 404
  assert r.json()['error']['status'] == 'NOT_FOUND'
  r = local_client.get(f'{vertex}:predict')
  assert r.status_code == 405
  assert r.json()['error']['status'] == 'UNIMPLEMENTED'


def test_token_auth(make_client, images):
  client = make_client(auth_token='s3cret')
  body = {'instances': [images[0].tolist()]}
  r = client.post(PREDICT, json=body)
  assert r.status_code == 401 and r.headers['www-authenticate'] == 'Bearer'
  assert 'Authorization: Bearer' in r.json()['error']
  assert client.post(PREDICT, json=body, headers={
      'authorization': 'Bearer wrong'}).status_code == 401
  assert client.post(PREDICT, json=body, headers={
      'authorization': 'Bearer s3cret'}).status_code == 200
  assert client.post(PREDICT, json=body, headers={
      'x-api-key': 's3cret'}).status_code == 200
  assert client.get('/v1/models/fmnist').status_code == 401
  assert client.get('/healthz').status_code == 200
  assert client.get('/readyz').status_code == 200
  spec = client.get('/openapi.json').json()
  assert 'bearer' in spec['components']['securitySchemes']
  assert spec['paths'][PREDICT.replace('fmnist', '{name}')]['post']['security']


def test_openapi_examples_are_accepted(local_client):
  """Every request example in the spec is a body the server accepts."""
  spec = local_client.get('/openapi.json').json()
  posted = 0
  for path, ops in spec['paths'].items():
    for method, op in ops.items():
      content = op.get('requestBody', {}).get('content', {})
      for ctype, media in content.items():
        if 'example' not in media:
          continue
        url = path.format(name='fmnist', version='1', project='p',
                          location='l', endpoint='e')
        r = local_client.request(method, url, content=json.dumps(
            media['example']), headers={'content-type': ctype})
        assert r.status_code == 200, (path, r.text)
        posted += 1
  assert posted >= 4
  # No version labels on the local backend, so none in its spec.
  assert not [p for p in spec['paths'] if '/labels/' in p]
  friendly = spec['paths']['/predict']['post']['requestBody']['content']
  assert set(friendly) == {'multipart/form-data', 'image/png', 'image/jpeg',
                           'application/json'}
  tfs = spec['paths']['/v1/models/{name}:predict']['post']['requestBody']
  items = tfs['content']['application/json']['schema']['properties'][
      'instances']
  assert items['maxItems'] == 16  # the configured instance limit


def test_spec_and_server_agree_on_unknown_fields(local_client):
  """A JSON body with an extra top-level field is rejected exactly where the
  spec says `additionalProperties: false` (found by schemathesis: the Vertex
  route rejected what its schema allowed)."""
  spec = local_client.get('/openapi.json').json()
  checked = 0
  for path, ops in spec['paths'].items():
    for method, op in ops.items():
      media = op.get('requestBody', {}).get('content', {}).get(
          'application/json')
      if not media or not isinstance(media.get('example'), dict):
        continue
      url = path.format(name='fmnist', version='1', project='p',
                        location='l', endpoint='e')
      r = local_client.request(method, url, content=json.dumps(
          {**media['example'], 'zz_unknown': 1}),
                               headers={'content-type': 'application/json'})
      closed = media['schema'].get('additionalProperties') is False
      assert r.status_code == (400 if closed else 200), (path, r.text)
      checked += 1
  assert checked >= 4


def test_metrics_count_requests_latency_and_batches(local_client, images):
  for _ in range(3):
    local_client.post(PREDICT, json={'instances': [images[0].tolist()]})
  text = local_client.get('/metrics').text
  line = [l for l in text.splitlines() if l.startswith(
      'fmnist_requests_total{code="200",route="/v1/models/{name}:predict"}')]
  assert line and float(line[0].split()[-1]) >= 3
  assert 'fmnist_request_latency_seconds_bucket{le="0.005",route=' in text
  assert 'fmnist_batch_size_count' in text
  assert 'fmnist_model_version 1.0' in text


def test_request_log_records_every_instance(make_client, tmp_path, images):
  client = make_client()
  r = client.post(PREDICT, json={'instances': images[:3].tolist()},
                  headers={'x-request-id': 'abc123'})
  assert r.headers['x-request-id'] == 'abc123'
  client.post('/predict', files={'file': ('a.png', png(images[4]),
                                          'image/png')})
  client.__exit__(None, None, None)  # clean shutdown flushes the queue
  log_dir = tmp_path / 'request_logs'
  assert not glob.glob(str(log_dir / '*.inprogress'))
  records = [json.loads(l) for f in sorted(glob.glob(str(log_dir / '*.jsonl')))
             for l in open(f)]
  assert len(records) == 4
  first = records[0]
  assert first['request_id'] == 'abc123' and first['model_version'] == '1'
  assert first['pixels'] == images[0].reshape(-1).tolist()
  assert first['class_name'] == features.CLASS_NAMES[first['class_id']]
  assert len(first['probabilities']) == 10
  assert first['timestamp'].endswith('Z') and first['route'] == 'tfserving'
  assert records[3]['pixels'] == images[4].reshape(-1).tolist()


class _BrokenBackend(base.Backend):
  async def predict(self, pixels, version=None, signature=None):
    raise RuntimeError('secret internal detail')

  async def status(self, version=None):
    return {}

  async def metadata(self, version=None):
    return {}


def test_unexpected_errors_are_500_without_traceback(model_home, tmp_path,
                                                     images):
  from asgi_client import AppClient
  from serving import app as app_lib
  config = make_config(model_home, tmp_path)
  app = app_lib.create_app(config, backend=_BrokenBackend())
  with AppClient(app) as client:
    r = client.post(PREDICT, json={'instances': [images[0].tolist()]})
    assert r.status_code == 500
    assert 'secret' not in r.text and 'Traceback' not in r.text
    assert r.headers['x-request-id'] in r.json()['error']
    assert client.get('/readyz').status_code == 503
    assert client.get('/healthz').status_code == 200


def test_new_version_is_picked_up_without_dropping_requests(
    make_client, model_home, tmp_path, second_version, images):
  serving_dir = tmp_path / 'serving_model'
  push(os.path.join(model_home['serving_dir'], '1'), str(serving_dir), 1)
  config = make_config(model_home, tmp_path, poll_seconds=0.2)
  import dataclasses
  client = make_client(dataclasses.replace(config,
                                           serving_dir=str(serving_dir)))
  body = {'instances': images[:2].tolist()}
  before = client.post(PREDICT, json=body).json()
  seen, failures, stop = set(), [], threading.Event()

  def hammer():
    while not stop.is_set():
      r = client.post(PREDICT, json=body)
      if r.status_code != 200:
        failures.append(r.text)
      seen.add(r.headers.get('x-model-version'))

  threads = [threading.Thread(target=hammer) for _ in range(3)]
  for t in threads:
    t.start()
  time.sleep(0.5)
  push(second_version, str(serving_dir), 2)
  deadline = time.time() + 30
  while '2' not in seen and time.time() < deadline:
    time.sleep(0.1)
  time.sleep(0.3)
  stop.set()
  for t in threads:
    t.join()
  assert not failures
  assert seen == {'1', '2'}
  after = client.post(PREDICT, json=body)
  assert after.headers['x-model-version'] == '2'
  assert after.json() != before  # really a different model
  assert client.get('/v1/models/fmnist').json()[
      'model_version_status'][0]['version'] == '2'


def test_not_ready_until_a_model_is_pushed(make_client, model_home, tmp_path,
                                           images):
  import dataclasses
  empty = tmp_path / 'empty_serving'
  config = dataclasses.replace(make_config(model_home, tmp_path),
                               serving_dir=str(empty), poll_seconds=0.2)
  client = make_client(config)
  r = client.get('/readyz')
  assert r.status_code == 503 and r.json()['status'] == 'not ready'
  r = client.post(PREDICT, json={'instances': [images[0].tolist()]})
  assert r.status_code == 503 and 'no model' in r.json()['error']
  push(os.path.join(model_home['serving_dir'], '1'), str(empty), 5)
  deadline = time.time() + 20
  while client.get('/readyz').status_code != 200 and time.time() < deadline:
    time.sleep(0.1)
  assert client.get('/readyz').status_code == 200
  assert client.post(PREDICT, json={'instances': [images[0].tolist()]}
                     ).headers['x-model-version'] == '5'
