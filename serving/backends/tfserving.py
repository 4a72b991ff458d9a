"""A TF Serving model server over its REST API (the Cloud Run sidecar setup).

Requests are sent in columnar form (`inputs`), so a batch travels as one
tensor. TF Serving's REST predict response does not say which version
answered, so unless the caller pinned one, we report the newest AVAILABLE
version from the status API (cached for `poll_seconds`).
"""

import time
from typing import Any, Dict, Optional

import httpx
import numpy as np

from serving import errors
from serving.backends import base


def wire_pixels(pixels: np.ndarray) -> list:
  """Integral pixels travel as ints: a third of the JSON, same tensor."""
  if (pixels == np.round(pixels)).all():
    return pixels.astype(np.int64).tolist()
  return pixels.tolist()


class TFServingBackend(base.Backend):
  """Forwards to `config.tfserving_url` for model `config.model_name`."""

  name = 'tfserving'

  def __init__(self, config):
    self._url = config.tfserving_url.rstrip('/')
    self._model = config.model_name
    self._timeout = config.backend_timeout_s
    self._version_ttl = config.poll_seconds
    self._client: Optional[httpx.AsyncClient] = None
    self._latest: Optional[str] = None
    self._latest_at = 0.0

  async def start(self) -> None:
    self._client = httpx.AsyncClient(
        base_url=self._url, timeout=self._timeout,
        limits=httpx.Limits(max_connections=128, max_keepalive_connections=64))

  async def close(self) -> None:
    if self._client is not None:
      await self._client.aclose()

  def _path(self, version: Optional[str], suffix: str = '') -> str:
    path = f'/v1/models/{self._model}'
    if version is not None:
      path += f'/versions/{version}'
    return path + suffix

  async def _call(self, method: str, path: str, body: Any = None) -> Dict:
    try:
      resp = await self._client.request(method, path, json=body)
    except httpx.TimeoutException:
      raise errors.BackendTimeout(
          f'TF Serving at {self._url} did not answer within {self._timeout:g}s',
          kind='backend_timeout') from None
    except httpx.TransportError as e:
      raise errors.BackendUnavailable(
          f'TF Serving at {self._url} is not reachable '
          f'({type(e).__name__}); is the model server running?',
          kind='backend_down') from None
    try:
      payload = resp.json()
    except ValueError:
      payload = None
    if resp.status_code == 200 and isinstance(payload, dict):
      return payload
    message = (payload.get('error') if isinstance(payload, dict) else None
               ) or resp.text[:200] or resp.reason_phrase
    if resp.status_code == 404:
      raise errors.NotFound(message, kind='unknown_version')
    if 400 <= resp.status_code < 500:
      raise errors.InvalidInput(f'TF Serving rejected the request: {message}',
                                kind='backend_rejected')
    if resp.status_code == 503:
      raise errors.BackendUnavailable(f'TF Serving is unavailable: {message}',
                                      kind='backend_down')
    raise errors.BackendError(
        f'TF Serving answered {resp.status_code}: {message}')

  async def _latest_version(self) -> str:
    now = time.monotonic()
    if self._latest is None or now - self._latest_at > self._version_ttl:
      status = await self.status()
      available = [int(s['version']) for s in status.get(
          'model_version_status', []) if s.get('state') == 'AVAILABLE']
      if not available:
        raise errors.BackendUnavailable(
            f'TF Serving has no AVAILABLE version of {self._model} yet',
            kind='no_model')
      self._latest, self._latest_at = str(max(available)), now
    return self._latest

  async def predict(self, pixels: np.ndarray, version: Optional[str] = None,
                    signature: str = 'serving_default') -> base.Prediction:
    body = {'signature_name': signature,
            'inputs': {'pixels': wire_pixels(pixels)}}
    payload = await self._call('POST', self._path(version, ':predict'), body)
    outputs = payload.get('outputs')
    if not isinstance(outputs, dict) or 'probabilities' not in outputs:
      raise errors.BackendError(
          'TF Serving answered without the expected "outputs" '
          '(is the model exported with models.signatures?)')
    used = version if version is not None else await self._latest_version()
    return base.Prediction.from_outputs(outputs, used)

  async def status(self, version: Optional[str] = None) -> Dict[str, Any]:
    return await self._call('GET', self._path(version))

  async def metadata(self, version: Optional[str] = None) -> Dict[str, Any]:
    return await self._call('GET', self._path(version, '/metadata'))
