"""OpenAPI schemas for what the routes really accept and return.

The routes parse bodies themselves (to give TF Serving's and Vertex's error
shapes and to validate pixels with useful messages), so FastAPI cannot infer
these; they are declared here and tests post every example to the server.
"""

from typing import Any, Dict, Optional

from models import features

_PIXEL = {'type': 'number', 'minimum': 0, 'maximum': features.PIXEL_MAX}
FLAT_IMAGE = {'type': 'array', 'items': _PIXEL,
              'minItems': features.NUM_PIXELS, 'maxItems': features.NUM_PIXELS,
              'description': '784 pixels, row-major, 0 = black background'}
SQUARE_IMAGE = {'type': 'array', 'minItems': features.IMAGE_SIZE,
                'maxItems': features.IMAGE_SIZE,
                'items': {'type': 'array', 'items': _PIXEL,
                          'minItems': features.IMAGE_SIZE,
                          'maxItems': features.IMAGE_SIZE},
                'description': '28 rows of 28 pixels'}
# With a channel axis of 1, as Keras arrays come (x[..., None]).
CHANNELS_LAST_IMAGE = {
    'type': 'array', 'minItems': features.IMAGE_SIZE,
    'maxItems': features.IMAGE_SIZE,
    'items': {'type': 'array', 'minItems': features.IMAGE_SIZE,
              'maxItems': features.IMAGE_SIZE,
              'items': {'type': 'array', 'items': _PIXEL, 'minItems': 1,
                        'maxItems': 1}},
    'description': '28x28x1: 28 rows of 28 one-channel pixels'}
CHANNELS_FIRST_IMAGE = {'type': 'array', 'items': SQUARE_IMAGE, 'minItems': 1,
                        'maxItems': 1, 'description': '1x28x28'}
B64_IMAGE = {'type': 'object', 'required': ['b64'], 'additionalProperties': False,
             'properties': {'b64': {'type': 'string', 'format': 'byte',
                                    'description': 'base64 PNG or JPEG'}}}
IMAGE = {'oneOf': [FLAT_IMAGE, SQUARE_IMAGE, CHANNELS_LAST_IMAGE,
                   CHANNELS_FIRST_IMAGE, B64_IMAGE]}
INSTANCE = {'oneOf': [IMAGE, {
    'type': 'object', 'required': ['pixels'], 'additionalProperties': False,
    'properties': {'pixels': IMAGE}}]}

_ZEROS = [0] * features.NUM_PIXELS
# A 1x1 black PNG: the smallest image that exercises the b64 path.
_TINY_PNG_B64 = ('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAA'
                 'AgABSK+kcQAAAABJRU5ErkJggg==')

PREDICTION_ROW = {'type': 'object', 'properties': {
    'probabilities': {'type': 'array', 'items': {'type': 'number'},
                      'minItems': features.NUM_CLASSES,
                      'maxItems': features.NUM_CLASSES},
    'class_ids': {'type': 'integer', 'minimum': 0,
                  'maximum': features.NUM_CLASSES - 1},
    'class_names': {'type': 'string', 'enum': list(features.CLASS_NAMES)}}}
ERROR = {'type': 'object', 'required': ['error'],
         'properties': {'error': {'type': 'string'}}}
GOOGLE_ERROR = {'type': 'object', 'required': ['error'], 'properties': {
    'error': {'type': 'object', 'properties': {
        'code': {'type': 'integer'}, 'message': {'type': 'string'},
        'status': {'type': 'string'}}}}}


def _json_body(schema: Dict[str, Any], example: Any) -> Dict[str, Any]:
  return {'requestBody': {'required': True, 'content': {
      'application/json': {'schema': schema, 'example': example}}}}


def _responses(ok: Dict[str, Any], error: Dict[str, Any]) -> Dict:
  err = {'content': {'application/json': {'schema': error}}}
  return {200: {'description': 'OK',
                'content': {'application/json': {'schema': ok}}},
          400: {'description': 'Invalid input', **err},
          401: {'description': 'Missing or wrong token', **err},
          404: {'description': 'Unknown model or version', **err},
          413: {'description': 'Body too large', **err},
          503: {'description': 'Backend down or no model', **err},
          504: {'description': 'Backend too slow', **err}}


def tfserving_predict(max_instances: int,
                      error: Optional[Dict[str, Any]] = None
                      ) -> Dict[str, Any]:
  """TF Serving's predict; also Vertex's rawPredict (its body goes to the
  model server as is), whose errors have Google's shape (`error`)."""
  batch = {'type': 'array', 'items': IMAGE, 'minItems': 1,
           'maxItems': max_instances}
  request = {'type': 'object', 'properties': {
      'signature_name': {'type': 'string', 'default': 'serving_default',
                         'enum': ['serving_default', 'serving_uint8']},
      'instances': {'type': 'array', 'items': INSTANCE, 'minItems': 1,
                    'maxItems': max_instances,
                    'description': 'row format'},
      'inputs': {'description': 'columnar format', 'oneOf': [batch, {
          'type': 'object', 'required': ['pixels'],
          'additionalProperties': False, 'properties': {'pixels': batch}}]}},
      'oneOf': [{'required': ['instances']}, {'required': ['inputs']}]}
  response = {'type': 'object', 'properties': {
      'predictions': {'type': 'array', 'items': PREDICTION_ROW},
      'outputs': {'type': 'object', 'properties': {
          'probabilities': {'type': 'array', 'items': {'type': 'array'}},
          'class_ids': {'type': 'array', 'items': {'type': 'integer'}},
          'class_names': {'type': 'array', 'items': {'type': 'string'}}}}}}
  return {**_json_body(request, {'instances': [_ZEROS]}),
          'responses': _responses(response, error or ERROR)}


def vertex_predict(max_instances: int) -> Dict[str, Any]:
  # Like Vertex AI's own endpoint (a Google API rejects unknown JSON fields),
  # anything beside instances/parameters is a 400.
  request = {'type': 'object', 'required': ['instances'],
             'additionalProperties': False, 'properties': {
                 'instances': {'type': 'array', 'items': INSTANCE,
                               'minItems': 1, 'maxItems': max_instances},
                 'parameters': {'type': ['object', 'null'],
                                'description': 'accepted, unused'}}}
  response = {'type': 'object', 'properties': {
      'predictions': {'type': 'array', 'items': PREDICTION_ROW},
      'deployedModelId': {'type': 'string'}, 'model': {'type': 'string'},
      'modelDisplayName': {'type': 'string'},
      'modelVersionId': {'type': 'string'}}}
  return {**_json_body(request, {'instances': [{'b64': _TINY_PNG_B64}]}),
          'responses': _responses(response, GOOGLE_ERROR)}


FRIENDLY_RESPONSE = {'type': 'object', 'properties': {
    'class_id': {'type': 'integer'},
    'class_name': {'type': 'string', 'enum': list(features.CLASS_NAMES)},
    'probabilities': {'type': 'array', 'items': {'type': 'number'},
                      'description': 'indexed by class id'},
    'model_name': {'type': 'string'}, 'model_version': {'type': 'string'},
    'request_id': {'type': 'string'}}}
FRIENDLY_ERROR = {'type': 'object', 'properties': {
    'error': {'type': 'string'}, 'kind': {'type': 'string'},
    'request_id': {'type': 'string'}}}


def friendly_predict() -> Dict[str, Any]:
  binary = {'type': 'string', 'format': 'binary'}
  return {'requestBody': {'required': True, 'content': {
      'multipart/form-data': {'schema': {
          'type': 'object', 'required': ['file'],
          'properties': {'file': {**binary,
                                  'description': 'PNG or JPEG, any size'}}}},
      'image/png': {'schema': binary},
      'image/jpeg': {'schema': binary},
      'application/json': {'schema': {
          'type': 'object', 'required': ['pixels'],
          'additionalProperties': False, 'properties': {'pixels': IMAGE}},
          'example': {'pixels': _ZEROS}},
  }}, 'responses': _responses(FRIENDLY_RESPONSE, FRIENDLY_ERROR)}


STATUS_RESPONSE = {'type': 'object', 'properties': {
    'model_version_status': {'type': 'array', 'items': {
        'type': 'object', 'properties': {
            'version': {'type': 'string'}, 'state': {'type': 'string'},
            'status': {'type': 'object', 'properties': {
                'error_code': {'type': 'string'},
                'error_message': {'type': 'string'}}}}}}}}


def tfserving_get(ok: Dict[str, Any]) -> Dict[str, Any]:
  return {'responses': _responses(ok, ERROR)}
