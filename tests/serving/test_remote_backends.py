"""tfserving and vertex backends against loopback servers speaking their REST.

The Vertex calls go through google-cloud-aiplatform's PredictionServiceClient
(REST transport, anonymous credentials, api_endpoint overridden), not a mock.
"""

import base64
import dataclasses

import numpy as np
import pytest

from serving import app as app_lib
from serving import imaging

import fake_servers  # pylint: disable=g-bad-import-order
import loopback  # tests/loopback.py  # pylint: disable=g-bad-import-order
from asgi_client import AppClient  # pylint: disable=g-bad-import-order
from model_fixture import direct, make_config  # pylint: disable=g-bad-import-order

PREDICT = '/v1/models/fmnist:predict'
ENDPOINT = 'projects/proj/locations/europe-west4/endpoints/42'



@pytest.fixture
def tfs_server(predict_fn):
  with fake_servers.tfserving(predict_fn, 'fmnist', 3) as server:
    yield server


@pytest.fixture
def vertex_server(predict_fn):
  with fake_servers.vertex(predict_fn) as server:
    yield server


def _assert_predictions(r, want) -> None:
  """The proxy answered 200 with what the SavedModel itself predicts."""
  assert r.status_code == 200, r.text
  rows = r.json()['predictions']
  assert [p['class_ids'] for p in rows] == want['class_ids'].tolist()
  np.testing.assert_allclose([p['probabilities'] for p in rows],
                             want['probabilities'], atol=1e-6)


def _assert_tf_serving_errors_pass_through(c, images) -> None:
  """TF Serving's own answers for an unknown version or label pass through."""
  body = {'instances': images[:1].tolist()}
  r = c.post('/v1/models/fmnist/versions/9:predict', json=body)
  assert r.status_code == 404
  assert r.json() == {'error': 'Servable not found for request: '
                               'Specific(fmnist, 9)'}
  r = c.post('/v1/models/fmnist/labels/beta:predict', json=body)
  assert r.status_code == 400
  assert 'Unrecognized servable version label: beta' in r.json()['error']


def _client(model_home, tmp_path, **overrides):
  config = make_config(model_home, tmp_path, backend_timeout_s=2.0,
                       **overrides)
  return AppClient(app_lib.create_app(config))


def test_tfserving_backend_matches_the_savedmodel(tfs_server, model_home,
                                                  tmp_path, predict_fn, images):
  want = direct(predict_fn, images[:5])
  with _client(model_home, tmp_path, backend='tfserving',
               tfserving_url=tfs_server.url) as c:
    r = c.post(PREDICT, json={'instances': images[:5].tolist()})
    assert r.status_code == 200, r.text
    assert [p['class_ids'] for p in r.json()['predictions']] == (
        want['class_ids'].tolist())
    assert r.headers['x-model-version'] == '3'
    # What reached TF Serving: its columnar format, integer pixels.
    sent = [q for q in tfs_server.requests if q['method'] == 'POST'][-1]
    assert sent['path'] == '/v1/models/fmnist:predict'
    assert sent['body']['signature_name'] == 'serving_default'
    assert np.asarray(sent['body']['inputs']['pixels']).shape == (5, 784)
    r = c.post('/predict', files={'file': ('a.png',
                                           imaging.encode_png(images[0]),
                                           'image/png')})
    assert r.json()['class_id'] == want['class_ids'][0]
    assert r.json()['model_version'] == '3'
    r = c.post('/v1/models/fmnist/versions/3:predict',
               json={'inputs': images[:2].tolist()})
    assert r.json()['outputs']['class_ids'] == want['class_ids'][:2].tolist()
    assert tfs_server.requests[-1]['path'] == (
        '/v1/models/fmnist/versions/3:predict')
    assert c.get('/v1/models/fmnist').json()['model_version_status'][0][
        'version'] == '3'
    assert c.get('/v1/models/fmnist/metadata').json()['model_spec'][
        'version'] == '3'
    assert c.get('/readyz').status_code == 200
    _assert_tf_serving_errors_pass_through(c, images)
    # Invalid input never reaches TF Serving.
    n = len(tfs_server.requests)
    assert c.post(PREDICT, json={'instances': [[256] * 784]}
                  ).status_code == 400
    assert len(tfs_server.requests) == n


def test_tfserving_version_labels_pass_through(predict_fn, model_home,
                                               tmp_path, images):
  body = {'instances': images[:2].tolist()}
  with fake_servers.tfserving(predict_fn, 'fmnist', 3,
                              labels={'stable': 2, 'canary': 3}) as tfs, \
      _client(model_home, tmp_path, backend='tfserving',
              tfserving_url=tfs.url) as c:
    r = c.post('/v1/models/fmnist/labels/stable:predict', json=body)
    assert r.status_code == 200, r.text
    assert tfs.requests[-2]['path'] == '/v1/models/fmnist/labels/stable:predict'
    # The version the label points to, not the newest (3).
    assert r.headers['x-model-version'] == '2'
    assert c.post(PREDICT, json=body).headers['x-model-version'] == '3'
    assert c.get('/v1/models/fmnist/labels/stable').json()[
        'model_version_status'] == [{'version': '2', 'state': 'AVAILABLE',
                                     'status': {'error_code': 'OK',
                                                'error_message': ''}}]
    assert c.get('/v1/models/fmnist/labels/canary/metadata').json()[
        'model_spec']['version'] == '3'
    assert '/v1/models/{name}/labels/{label}:predict' in c.get(
        '/openapi.json').json()['paths']
    r = c.post('/v1/models/fmnist/labels/beta:predict', json=body)
    assert r.status_code == 400
    assert 'Unrecognized servable version label: beta' in r.json()['error']


def test_tfserving_grpc_matches_the_savedmodel(predict_fn, model_home,
                                               tmp_path, images):
  want = direct(predict_fn, images[:5])
  with fake_servers.GrpcTFServing(predict_fn, 'fmnist', 3,
                                  labels={'stable': 2}) as tfs, \
      _client(model_home, tmp_path, backend='tfserving',
              tfserving_url=tfs.url) as c:
    r = c.post(PREDICT, json={'instances': images[:5].tolist()})
    _assert_predictions(r, want)
    # The version comes from TF Serving's PredictResponse itself.
    assert r.headers['x-model-version'] == '3'
    assert tfs.requests[-1].signature_name == 'serving_default'
    r = c.post('/v1/models/fmnist:predict', json={
        'signature_name': 'serving_uint8', 'inputs': images[:2].tolist()})
    assert r.json()['outputs']['class_ids'] == want['class_ids'][:2].tolist()
    assert tfs.requests[-1].signature_name == 'serving_uint8'
    r = c.post('/v1/models/fmnist/labels/stable:predict',
               json={'instances': images[:1].tolist()})
    assert r.headers['x-model-version'] == '2'
    assert c.get('/v1/models/fmnist/versions/2').json() == {
        'model_version_status': [{'version': '2', 'state': 'AVAILABLE',
                                  'status': {'error_code': 'OK',
                                             'error_message': ''}}]}
    meta = c.get('/v1/models/fmnist/metadata').json()
    assert meta['model_spec']['version'] == '3'
    assert meta['metadata']['signature_def']['signature_def'][
        'serving_default']['method_name'] == 'tensorflow/serving/predict'
    assert c.get('/readyz').status_code == 200
    _assert_tf_serving_errors_pass_through(c, images)
    tfs.delay_s = 2.5
    r = c.post(PREDICT, json={'instances': images[:1].tolist()})
    assert r.status_code == 504 and 'within 2s' in r.json()['error']
  with _client(model_home, tmp_path, backend='tfserving',
               tfserving_url=f'grpc://127.0.0.1:{loopback.free_port()}') as c:
    r = c.post(PREDICT, json={'instances': images[:1].tolist()})
    assert r.status_code == 503 and 'not reachable' in r.json()['error']
    assert c.get('/readyz').status_code == 503


def test_tfserving_url_must_be_rest_or_grpc(model_home, tmp_path):
  from serving import config as cfg_lib
  for bad in ('127.0.0.1:8500', 'grpc://host', 'ftp://host:1'):
    with pytest.raises(cfg_lib.ServingConfigError, match='grpc://HOST:8500'):
      make_config(model_home, tmp_path, backend='tfserving',
                  tfserving_url=bad).validate()


def test_tfserving_down_slow_or_failing(tfs_server, model_home, tmp_path,
                                        images):
  body = {'instances': images[:1].tolist()}
  with _client(model_home, tmp_path, backend='tfserving',
               tfserving_url=f'http://127.0.0.1:{loopback.free_port()}') as c:
    r = c.post(PREDICT, json=body)
    assert r.status_code == 503 and 'not reachable' in r.json()['error']
    assert c.get('/readyz').status_code == 503
    assert c.get('/healthz').status_code == 200
  with _client(model_home, tmp_path, backend='tfserving',
               tfserving_url=tfs_server.url) as c:
    assert c.post(PREDICT, json=body).status_code == 200
    tfs_server.delay_s = 2.5
    r = c.post(PREDICT, json=body)
    assert r.status_code == 504 and 'within 2s' in r.json()['error']
    tfs_server.delay_s = 0
    tfs_server.fail_status = 500
    r = c.post(PREDICT, json=body)
    assert r.status_code == 502 and 'injected failure' in r.json()['error']
    tfs_server.fail_status = None
    assert c.post(PREDICT, json=body).status_code == 200


def test_vertex_backend_through_aiplatform(vertex_server, model_home, tmp_path,
                                           predict_fn, images):
  want = direct(predict_fn, images[:4])
  with _client(model_home, tmp_path, backend='vertex',
               vertex_endpoint=ENDPOINT,
               vertex_api_endpoint=vertex_server.url) as c:
    r = c.post(PREDICT, json={'instances': images[:4].tolist()})
    _assert_predictions(r, want)
    sent = vertex_server.requests[-1]
    assert sent['path'].split('?')[0] == f'/v1/{ENDPOINT}:predict'
    assert np.asarray(sent['body']['instances']).shape == (4, 784)
    assert 'authorization' not in {k.lower() for k in sent['headers']}
    # The Vertex-compatible route passes the endpoint's ids through.
    img = base64.b64encode(imaging.encode_png(images[0])).decode()
    r = c.post('/v1/projects/a/locations/b/endpoints/c:predict',
               json={'instances': [{'b64': img}]})
    body = r.json()
    assert body['deployedModelId'] == '7777'
    assert body['modelVersionId'] == '3'
    assert body['model'] == 'projects/proj/locations/europe-west4/models/456'
    assert body['predictions'][0]['class_ids'] == want['class_ids'][0]
    assert c.get('/v1/models/fmnist').json()['model_version_status'][0][
        'version'] == '3'
    assert c.get('/readyz').status_code == 200


def test_vertex_errors(vertex_server, model_home, tmp_path, images):
  body = {'instances': images[:1].tolist()}
  missing = ENDPOINT.replace('/42', '/missing')
  with _client(model_home, tmp_path, backend='vertex', vertex_endpoint=missing,
               vertex_api_endpoint=vertex_server.url) as c:
    r = c.post(PREDICT, json=body)
    assert r.status_code == 404 and 'not found' in r.json()['error']
  down = f'http://127.0.0.1:{loopback.free_port()}'
  with _client(model_home, tmp_path, backend='vertex', vertex_endpoint=ENDPOINT,
               vertex_api_endpoint=down) as c:
    r = c.post(PREDICT, json=body)
    assert r.status_code == 503 and 'not reachable' in r.json()['error']
  with _client(model_home, tmp_path, backend='vertex', vertex_endpoint=ENDPOINT,
               vertex_api_endpoint=vertex_server.url) as c:
    vertex_server.delay_s = 3.5
    r = c.post('/v1/projects/a/locations/b/endpoints/c:predict', json=body)
    assert r.status_code == 504
    assert r.json()['error']['status'] == 'DEADLINE_EXCEEDED'
    vertex_server.delay_s = 0
    assert c.post(PREDICT, json=body).status_code == 200


def test_bad_vertex_endpoint_is_a_config_error(model_home, tmp_path):
  from serving import errors
  config = dataclasses.replace(make_config(model_home, tmp_path),
                               backend='vertex', vertex_endpoint='42')
  with pytest.raises(errors.ServingError, match='projects/PROJECT'):
    app_lib.create_app(config)
