"""A TF Serving model server over its REST API (the Cloud Run sidecar setup).

Requests are sent in columnar form (`inputs`), so a batch travels as one
tensor. TF Serving's REST predict response does not say which version
answered, so unless the caller pinned one, we report the newest AVAILABLE
version (or the one a version label points to) from the status API, cached
for `poll_seconds`. Version labels (`/labels/stable`) are TF Serving's, set in
its model config file; they pass through unchanged.
"""

import time
from typing import Any, Dict, Optional, Tuple

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
  supports_labels = True

  def __init__(self, config):
    self._url = config.tfserving_url.rstrip('/')
    self._model = config.model_name
    self._timeout = config.backend_timeout_s
    self._version_ttl = config.poll_seconds
    self._client: Optional[httpx.AsyncClient] = None
    # label ('' = latest) -> (version, when it was read)
    self._resolved: Dict[str, Tuple[str, float]] = {}

  async def start(self) -> None:
    self._client = httpx.AsyncClient(
        base_url=self._url, timeout=self._timeout,
        limits=httpx.Limits(max_connections=128, max_keepalive_connections=64))

  async def close(self) -> None:
    if self._client is not None:
      await self._client.aclose()

  def _path(self, version: Optional[str], suffix: str = '',
            label: Optional[str] = None) -> str:
    path = f'/v1/models/{self._model}'
    if version is not None:
      path += f'/versions/{version}'
    elif label is not None:
      path += f'/labels/{label}'
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

  async def _resolve_version(self, label: Optional[str]) -> str:
    """The newest AVAILABLE version, or the one `label` points to."""
    now = time.monotonic()
    version, read_at = self._resolved.get(label or '', (None, 0.0))
    if version is None or now - read_at > self._version_ttl:
      status = await self.status(label=label)
      available = [int(s['version']) for s in status.get(
          'model_version_status', []) if s.get('state') == 'AVAILABLE']
      if not available:
        raise errors.BackendUnavailable(
            f'TF Serving has no AVAILABLE version of {self._model} yet',
            kind='no_model')
      version = str(max(available))
      self._resolved[label or ''] = (version, now)
    return version

  async def predict(self, pixels: np.ndarray, version: Optional[str] = None,
                    signature: str = 'serving_default',
                    label: Optional[str] = None) -> base.Prediction:
    body = {'signature_name': signature,
            'inputs': {'pixels': wire_pixels(pixels)}}
    payload = await self._call('POST', self._path(version, ':predict', label),
                               body)
    outputs = payload.get('outputs')
    if not isinstance(outputs, dict) or 'probabilities' not in outputs:
      raise errors.BackendError(
          'TF Serving answered without the expected "outputs" '
          '(is the model exported with models.signatures?)')
    used = version if version is not None else await self._resolve_version(
        label)
    return base.Prediction.from_outputs(outputs, used)

  async def status(self, version: Optional[str] = None,
                   label: Optional[str] = None) -> Dict[str, Any]:
    return await self._call('GET', self._path(version, '', label))

  async def metadata(self, version: Optional[str] = None,
                     label: Optional[str] = None) -> Dict[str, Any]:
    return await self._call('GET', self._path(version, '/metadata', label))
