"""A Vertex AI Endpoint through google-cloud-aiplatform's PredictionService.

Uses the REST transport; `vertex_api_endpoint` overrides the regional host
(tests point it at a loopback server). A plain `http://` endpoint gets
anonymous credentials, since a token must never travel unencrypted;
otherwise Application Default Credentials (the Cloud Run service account).
"""

import asyncio
import re
from typing import Any, Dict, Optional

import numpy as np

from serving import errors
from serving.backends import base
from serving.backends import tfserving

_ENDPOINT = re.compile(
    r'^projects/[^/]+/locations/(?P<location>[^/]+)/endpoints/[^/]+$')


class VertexBackend(base.Backend):
  """Forwards to the endpoint `config.vertex_endpoint`."""

  name = 'vertex'

  def __init__(self, config):
    match = _ENDPOINT.match(config.vertex_endpoint)
    if not match:
      raise errors.ServingError(
          f'--vertex-endpoint {config.vertex_endpoint!r} must look like '
          'projects/PROJECT/locations/REGION/endpoints/ID')
    self._endpoint = config.vertex_endpoint
    self._api_endpoint = (config.vertex_api_endpoint or
                          f'{match["location"]}-aiplatform.googleapis.com')
    self._timeout = config.backend_timeout_s
    self._client = None
    self._last: Dict[str, str] = {}

  async def start(self) -> None:
    from google.api_core import client_options  # pylint: disable=g-import-not-at-top
    from google.cloud import aiplatform_v1  # pylint: disable=g-import-not-at-top
    credentials = None
    if self._api_endpoint.startswith('http://'):
      from google.auth import credentials as ga_credentials  # pylint: disable=g-import-not-at-top
      credentials = ga_credentials.AnonymousCredentials()
    self._client = aiplatform_v1.PredictionServiceClient(
        credentials=credentials, transport='rest',
        client_options=client_options.ClientOptions(
            api_endpoint=self._api_endpoint))

  def _predict_sync(self, instances: list):
    from google.protobuf import json_format  # pylint: disable=g-import-not-at-top
    from google.protobuf import struct_pb2  # pylint: disable=g-import-not-at-top
    values = [json_format.ParseDict(i, struct_pb2.Value()) for i in instances]
    return self._client.predict(endpoint=self._endpoint, instances=values,
                                timeout=self._timeout)

  async def predict(self, pixels: np.ndarray, version: Optional[str] = None,
                    signature: str = 'serving_default') -> base.Prediction:
    if version is not None and version != self._last.get('modelVersionId'):
      raise errors.NotFound(
          'the vertex backend serves whatever version the endpoint routes '
          'to; leave the version out of the URL', kind='unknown_version')
    from google.api_core import exceptions as gexc  # pylint: disable=g-import-not-at-top
    import requests  # pylint: disable=g-import-not-at-top
    loop = asyncio.get_running_loop()
    try:
      response = await asyncio.wait_for(loop.run_in_executor(
          None, self._predict_sync, tfserving.wire_pixels(pixels)),
                                        self._timeout + 1)
    except (asyncio.TimeoutError, gexc.DeadlineExceeded,
            requests.exceptions.Timeout):
      raise errors.BackendTimeout(
          f'Vertex endpoint did not answer within {self._timeout:g}s',
          kind='backend_timeout') from None
    except requests.exceptions.ConnectionError:
      raise errors.BackendUnavailable(
          f'Vertex API at {self._api_endpoint} is not reachable',
          kind='backend_down') from None
    except gexc.NotFound as e:
      raise errors.NotFound(f'Vertex: {e.message}', kind='unknown_model') from None
    except (gexc.InvalidArgument, gexc.BadRequest) as e:
      raise errors.InvalidInput(f'Vertex rejected the request: {e.message}',
                                kind='backend_rejected') from None
    except (gexc.ServiceUnavailable, gexc.TooManyRequests) as e:
      raise errors.BackendUnavailable(f'Vertex is unavailable: {e.message}',
                                      kind='backend_down') from None
    except gexc.GoogleAPICallError as e:
      raise errors.BackendError(f'Vertex failed: {e.message}') from None
    rows = [dict(p) for p in response.predictions]
    if len(rows) != len(pixels) or not all('probabilities' in r for r in rows):
      raise errors.BackendError(
          'Vertex answered without one {"probabilities", "class_ids", ...} '
          'prediction per instance (is the right model deployed?)')
    outputs = {k: [r.get(k) for r in rows]
               for k in ('probabilities', 'class_ids', 'class_names')}
    if any(n is None for n in outputs['class_names']):
      outputs['class_names'] = None
    extra = {'deployedModelId': response.deployed_model_id,
             'model': response.model,
             'modelVersionId': response.model_version_id,
             'modelDisplayName': response.model_display_name}
    self._last = {k: v for k, v in extra.items() if v}
    used = response.model_version_id or response.deployed_model_id
    return base.Prediction.from_outputs(outputs, used, **extra)

  async def status(self, version: Optional[str] = None) -> Dict[str, Any]:
    seen = self._last.get('modelVersionId') or self._last.get('deployedModelId')
    if version is not None and version != seen:
      raise errors.NotFound(f'version {version} is not known to this proxy',
                            kind='unknown_version')
    if not seen:
      return {'model_version_status': [base.version_status('0', 'UNKNOWN')]}
    return {'model_version_status': [base.version_status(seen)]}

  async def metadata(self, version: Optional[str] = None) -> Dict[str, Any]:
    raise errors.NotFound(
        'model metadata is not available through the vertex backend; see the '
        'model in the Vertex AI Model Registry', kind='unsupported')
