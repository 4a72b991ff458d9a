"""Pure-ASGI middleware: request ids, the body limit, gzip bodies, metrics.

Pure ASGI (not BaseHTTPMiddleware) so it adds microseconds, and so the body
limit holds for chunked uploads too: bytes are counted as they arrive and the
read fails with PayloadTooLarge the moment the limit is crossed. A body sent
with `Content-Encoding: gzip` (TF Serving's REST API accepts it) is inflated
as it arrives and the limit applies to the inflated bytes, so a small
compressed body cannot expand into gigabytes.
"""

import json
import re
import time
import uuid
import zlib

from serving import errors

_REQUEST_ID = re.compile(r'^[A-Za-z0-9._:-]{1,64}$')


def is_vertex_path(path: str) -> bool:
  return path.startswith('/v1/projects/')


def error_body(path: str, err: errors.ServingError, request_id: str) -> dict:
  """The error shape each API's clients expect."""
  if is_vertex_path(path):
    return {'error': {'code': err.status, 'message': err.message,
                      'status': err.grpc_status}}
  if path.startswith('/v1/'):
    return {'error': err.message}  # TF Serving's exact shape
  return {'error': err.message, 'kind': err.kind, 'request_id': request_id}


class _Inflater:
  """Inflates a gzip body chunk by chunk, never past `limit` bytes."""

  def __init__(self, limit: int, too_large: errors.ServingError):
    self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    self._left = limit
    self._too_large = too_large

  def feed(self, chunk: bytes, more: bool) -> bytes:
    try:
      # At most one byte past the limit: enough to know it was crossed.
      out = self._decoder.decompress(chunk, self._left + 1)
      if len(out) > self._left or self._decoder.unconsumed_tail:
        raise self._too_large
      if not more:  # all input is consumed; what is left is under a window
        out += self._decoder.flush()
    except zlib.error as e:
      raise errors.InvalidInput(f'the body is not valid gzip ({e})',
                                kind='malformed_gzip') from None
    self._left -= len(out)
    if self._left < 0:
      raise self._too_large
    if not more and not self._decoder.eof:
      raise errors.InvalidInput('the gzip body ends before its end marker',
                                kind='malformed_gzip')
    return out


class GuardMiddleware:
  """Assigns `request_id`, enforces `max_body_bytes`, records metrics."""

  def __init__(self, app, max_body_bytes: int, metrics):
    self.app = app
    self.max_body_bytes = max_body_bytes
    self.metrics = metrics

  async def __call__(self, scope, receive, send):
    if scope['type'] != 'http':
      return await self.app(scope, receive, send)
    start = time.perf_counter()
    headers = dict(scope['headers'])
    given = headers.get(b'x-request-id', b'').decode('latin-1')
    request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
    scope.setdefault('state', {})['request_id'] = request_id
    status = [500]

    async def send_wrapper(message):
      if message['type'] == 'http.response.start':
        status[0] = message['status']
        message['headers'] = list(message.get('headers', [])) + [
            (b'x-request-id', request_id.encode())]
      await send(message)

    limit = self.max_body_bytes
    too_large = errors.PayloadTooLarge(
        f'request body is larger than {limit} bytes; send fewer or smaller '
        'images per request')
    try:
      declared = int(headers.get(b'content-length', b'0') or 0)
    except ValueError:
      declared = 0
    encoding = headers.get(b'content-encoding', b'identity').decode(
        'latin-1').strip().lower()
    try:
      if declared > limit:
        await self._reject(scope, send_wrapper, too_large, request_id)
        return
      if encoding not in ('identity', 'gzip', 'x-gzip'):
        await self._reject(scope, send_wrapper, errors.UnsupportedMediaType(
            f'unsupported Content-Encoding "{encoding}"; send the body as '
            'is or gzip-compressed'), request_id)
        return
      inflate = None
      if encoding != 'identity':
        inflate = _Inflater(limit, too_large)
        # The app sees the inflated body, so the encoding header goes.
        scope = dict(scope, headers=[
            (k, v) for k, v in scope['headers']
            if k.lower() not in (b'content-encoding', b'content-length')])
      received = [0]

      async def receive_wrapper():
        message = await receive()
        if message['type'] == 'http.request':
          received[0] += len(message.get('body', b''))
          if received[0] > limit:
            raise too_large
          if inflate is not None:
            message = dict(message, body=inflate.feed(
                message.get('body', b''), message.get('more_body', False)))
        return message

      await self.app(scope, receive_wrapper, send_wrapper)
    finally:
      route = scope.get('route')
      label = getattr(route, 'path', None) or 'unmatched'
      self.metrics.requests.labels(route=label, code=str(status[0])).inc()
      self.metrics.latency.labels(route=label).observe(
          time.perf_counter() - start)

  async def _reject(self, scope, send, err, request_id):
    self.metrics.errors.labels(kind=err.kind).inc()
    body = json.dumps(error_body(scope['path'], err, request_id)).encode()
    await send({'type': 'http.response.start', 'status': err.status,
                'headers': [(b'content-type', b'application/json'),
                            (b'content-length', str(len(body)).encode()),
                            (b'connection', b'close')]})
    await send({'type': 'http.response.body', 'body': body})
