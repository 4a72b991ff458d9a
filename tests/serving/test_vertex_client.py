"""The proxy's Vertex AI routes as Google's own client sees them.

google-cloud-aiplatform's PredictionServiceClient (REST transport, anonymous
credentials, api_endpoint pointed at the proxy under uvicorn) calls `predict`
and `raw_predict` exactly as it would call a Vertex AI Endpoint, so the
routes' paths, bodies, answers and error shapes are checked against the real
client, not against our reading of the API.
"""

import json

from google.api import httpbody_pb2
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import aiplatform_v1
from google.protobuf import json_format
from google.protobuf import struct_pb2
import httpx
import pytest

from model_fixture import direct  # pylint: disable=g-bad-import-order

ENDPOINT = 'projects/proj/locations/us-central1/endpoints/123'


@pytest.fixture(scope='module')
def client(live_proxy):
  return aiplatform_v1.PredictionServiceClient(
      transport='rest', credentials=AnonymousCredentials(),
      client_options={'api_endpoint': live_proxy})


def _value(obj) -> struct_pb2.Value:
  return json_format.ParseDict(obj, struct_pb2.Value())


def test_predict_through_the_aiplatform_client(client, predict_fn, images):
  want = direct(predict_fn, images[:3])
  r = client.predict(endpoint=ENDPOINT,
                     instances=[_value(i.tolist()) for i in images[:3]],
                     parameters=_value({}))
  got = aiplatform_v1.PredictResponse.to_dict(r)['predictions']
  assert [int(p['class_ids']) for p in got] == want['class_ids'].tolist()
  assert r.model_version_id == '1' and r.deployed_model_id == 'local'
  assert r.model == 'projects/proj/locations/us-central1/models/fmnist'


def test_raw_predict_takes_and_answers_tf_serving_json(client, predict_fn,
                                                       images):
  want = direct(predict_fn, images[:2])
  for body in ({'instances': images[:2].tolist()},
               {'inputs': images[:2].tolist()}):
    r = client.raw_predict(endpoint=ENDPOINT, http_body=httpbody_pb2.HttpBody(
        content_type='application/json', data=json.dumps(body).encode()))
    answer = json.loads(r.data)
    ids = ([p['class_ids'] for p in answer['predictions']]
           if 'instances' in body else answer['outputs']['class_ids'])
    assert ids == want['class_ids'].tolist()


def test_raw_predict_sent_raw_is_tf_serving_predict(live_proxy, predict_fn,
                                                    images):
  # What curl and `aiplatform.Endpoint.raw_predict` send: the model server's
  # own JSON, answered as it answers.
  url = f'{live_proxy}/v1/{ENDPOINT}:rawPredict'
  r = httpx.post(url, json={'instances': images[:2].tolist()})
  assert r.status_code == 200, r.text
  assert [p['class_ids'] for p in r.json()['predictions']] == (
      direct(predict_fn, images[:2])['class_ids'].tolist())
  assert r.headers['X-Model-Version'] == '1'
  r = httpx.post(url, json={'instances': [[1, 2, 3]]})
  assert r.status_code == 400
  assert r.json()['error']['status'] == 'INVALID_ARGUMENT'


@pytest.mark.parametrize('call, message', [
    (lambda c: c.predict(endpoint=ENDPOINT, instances=[_value([1, 2, 3])]),
     'each image must be'),
    (lambda c: c.predict(endpoint=ENDPOINT,
                         instances=[_value([[0] * 784])] * 5),
     'at most 4 per request'),
    (lambda c: c.raw_predict(endpoint=ENDPOINT, http_body=httpbody_pb2.HttpBody(
        content_type='application/json', data=b'{"instances": [')),
     'malformed JSON'),
])
def test_bad_requests_are_invalid_argument_errors(client, call, message):
  # The client maps Google's error shape to its exception types: a 400 with
  # status INVALID_ARGUMENT is BadRequest, the message passed through.
  with pytest.raises(exceptions.BadRequest) as e:
    call(client)
  assert message in e.value.message
