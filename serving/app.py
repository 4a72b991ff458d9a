"""The ASGI app: friendly, TF Serving- and Vertex-compatible routes on one backend.

Routes:
  POST /predict                                    image upload or JSON pixels
  POST /v1/models/{name}[/versions/{v}|/labels/{l}]:predict  TF Serving predict
  GET  /v1/models/{name}[/versions/{v}|/labels/{l}][/metadata]
                                                   TF Serving status/metadata
  POST /v1/projects/{p}/locations/{l}/endpoints/{e}:predict   Vertex predict
  GET  /healthz (alive), /readyz (a model answers), /metrics (Prometheus)

Every route validates input before any backend call and answers errors as
JSON in its API's shape; an unexpected exception is logged with its
traceback here and answered with a 500 naming the request id.
"""

import asyncio
import base64
import binascii
import contextlib
import hmac
import json
import logging
import os
import time
from typing import Any, Awaitable, Callable, Optional

import fastapi
from fastapi import responses
import numpy as np
from starlette.exceptions import HTTPException as StarletteHTTPException

from models import features
from serving import backends
from serving import errors
from serving import imaging
from serving import instances
from serving import jsonio
from serving import metrics as metrics_lib
from serving import middleware
from serving import request_log
from serving import routes
from serving import schemas
from serving import config as config_lib
from serving.config import ServingConfig

_log = logging.getLogger(__name__)
_READY_CACHE_S = 1.0
_IMAGE_TYPES = ('image/png', 'image/jpeg', 'application/octet-stream')
# HTTP statuses of route errors (no such route, wrong method) -> the
# google.rpc code a Vertex client reads.
_GRPC_STATUS = {404: 'NOT_FOUND', 405: 'UNIMPLEMENTED'}


_UNREAD = object()  # a request body not read yet


def _json(body: Any, status: int = 200, headers=None) -> responses.Response:
  return responses.Response(
      jsonio.dumps_compact(body).encode(), status_code=status,
      media_type='application/json', headers=headers)


class _Service:
  """Route logic, holding the backend, the request logger and metrics."""

  def __init__(self, config: ServingConfig, backend: backends.Backend,
               logger: request_log.RequestLogger, metrics: metrics_lib.Metrics):
    self.config = config
    self.backend = backend
    self.logger = logger
    self.metrics = metrics
    self._ready_at = 0.0

  # Plumbing --------------------------------------------------------------
  def _check_auth(self, request: fastapi.Request) -> None:
    token = self.config.auth_token
    if not token:
      return
    given = request.headers.get('x-api-key', '')
    auth = request.headers.get('authorization', '')
    if auth[:7].lower() == 'bearer ':
      given = auth[7:].strip()
    if not given or not hmac.compare_digest(given.encode(), token.encode()):
      raise errors.Unauthorized(
          'missing or wrong token: send "Authorization: Bearer <token>" or '
          '"X-API-Key: <token>"')

  async def guarded(self, request: fastapi.Request,
                    handler: Callable[[], Awaitable[responses.Response]],
                    auth: bool = True) -> responses.Response:
    """Runs `handler`, turning every failure into a JSON error response."""
    request_id = request.state.request_id
    try:
      if auth:
        self._check_auth(request)
      return await handler()
    except errors.ServingError as e:
      err = e
    except StarletteHTTPException as e:
      # Starlette's own client errors raised inside a route (e.g. a multipart
      # form with too many fields or files) keep their 4xx status.
      err = errors.ServingError(str(e.detail), kind='http')
      err.status = e.status_code
    except Exception:  # pylint: disable=broad-except
      _log.exception('request %s failed', request_id)
      err = errors.ServingError(
          f'internal error; the server log has details under request id '
          f'{request_id}')
    self.metrics.errors.labels(kind=err.kind).inc()
    headers = ({'WWW-Authenticate': 'Bearer'}
               if isinstance(err, errors.Unauthorized) else None)
    return _json(middleware.error_body(request.url.path, err, request_id),
                 err.status, headers)

  async def _body_json(self, request: fastapi.Request) -> Any:
    return self._parse_json(await request.body())

  @staticmethod
  def _parse_json(body: bytes) -> Any:
    try:
      return jsonio.loads(body)
    except RecursionError:
      # json.loads recurses once per nesting level; orjson stops at 1024.
      raise errors.InvalidInput(
          'malformed JSON: nested too deeply (a predict body needs at most '
          '4 levels)', kind='malformed_json') from None
    except (ValueError, UnicodeDecodeError) as e:
      detail = (f'{e.msg} at line {e.lineno} column {e.colno}'
                if isinstance(e, json.JSONDecodeError) else str(e))
      raise errors.InvalidInput(f'malformed JSON: {detail}',
                                kind='malformed_json') from None

  def _check_model(self, name: str, version: Optional[str]) -> None:
    if name != self.config.model_name:
      spec = f'Specific({name}, {version})' if version else f'Latest({name})'
      raise errors.NotFound(
          f'Servable not found for request: {spec}; this server serves model '
          f'"{self.config.model_name}"', kind='unknown_model')
    if version is not None and not version.isdigit():
      raise errors.InvalidInput(
          f'model version must be a positive integer, got "{version}"',
          kind='bad_version')

  def _label(self, label: Optional[str]) -> dict:
    """Backend kwargs for a TF Serving version label (only TF Serving has them)."""
    if label is None:
      return {}
    if not self.backend.supports_labels:
      raise errors.InvalidInput(
          f'Unrecognized servable version label: {label}; version labels are '
          f'set in TF Serving\'s model config (--backend tfserving), the '
          f'{self.backend.name} backend serves one version: leave the label '
          'out of the URL', kind='unknown_label')
    return {'label': label}

  async def _predict(self, pixels: np.ndarray, version: Optional[str],
                     signature: str, route: str, request_id: str,
                     label: Optional[str] = None) -> backends.Prediction:
    by_label = self._label(label)
    try:
      prediction = await asyncio.wait_for(
          self.backend.predict(pixels, version=version, signature=signature,
                               **by_label),
          self.config.backend_timeout_s)
    except asyncio.TimeoutError:
      raise errors.BackendTimeout(
          f'the model did not answer within {self.config.backend_timeout_s:g}s; '
          'retry later', kind='backend_timeout') from None
    if len(prediction) != len(pixels):
      raise errors.BackendError(
          f'backend returned {len(prediction)} predictions for '
          f'{len(pixels)} images')
    for name in prediction.class_names:
      self.metrics.instances.labels(class_name=name).inc()
    self.logger.log(request_log.Served(
        timestamp=time.time(), request_id=request_id, route=route,
        model_name=self.config.model_name,
        model_version=prediction.model_version, pixels=pixels,
        probabilities=prediction.probabilities,
        class_ids=prediction.class_ids, class_names=prediction.class_names))
    return prediction

  @staticmethod
  def _rows(p: backends.Prediction) -> list:
    probs = p.probabilities.tolist()
    ids = p.class_ids.tolist()
    return [{'probabilities': probs[i], 'class_ids': ids[i],
             'class_names': p.class_names[i]} for i in range(len(p))]

  # Routes -----------------------------------------------------------------
  async def friendly(self, request: fastapi.Request) -> responses.Response:
    with self.metrics.in_flight.track():
      ctype = request.headers.get('content-type', '').split(';')[0].strip()
      limit = self.config.max_image_pixels
      if ctype == 'multipart/form-data':
        form = await request.form(max_files=1, max_fields=1)
        upload = form.get('file')
        if upload is None or isinstance(upload, str):
          raise errors.InvalidInput(
              'multipart upload needs a file field named "file" '
              '(curl -F file=@shirt.png)', kind='missing_file')
        pixels = imaging.to_pixels(await upload.read(), limit).reshape(
            1, features.NUM_PIXELS).astype(np.float32)
      elif ctype in _IMAGE_TYPES:
        pixels = imaging.to_pixels(await request.body(), limit).reshape(
            1, features.NUM_PIXELS).astype(np.float32)
      elif ctype == 'application/json':
        body = await self._body_json(request)
        if not isinstance(body, dict) or set(body) != {'pixels'}:
          raise errors.InvalidInput(
              'JSON body must be {"pixels": <28x28 or 784 numbers in 0..255, '
              'or {"b64": "<base64 PNG/JPEG>"}>}', kind='malformed_request')
        pixels = instances.one_image(body['pixels'], '"pixels"', limit)
      else:
        raise errors.UnsupportedMediaType(
            f'unsupported content type "{ctype or "none"}"; send a multipart '
            'upload (field "file"), image/png, image/jpeg, or application/json '
            '{"pixels": ...}')
      p = await self._predict(pixels, None, 'serving_default', 'friendly',
                              request.state.request_id)
    return _json({
        'class_id': int(p.class_ids[0]), 'class_name': p.class_names[0],
        'probabilities': p.probabilities[0].tolist(),
        'model_name': self.config.model_name, 'model_version': p.model_version,
        'request_id': request.state.request_id})

  async def tfserving_predict(self, request: fastapi.Request, name: str,
                              version: Optional[str],
                              label: Optional[str] = None,
                              body: Any = _UNREAD) -> responses.Response:
    """TF Serving's predict; `body` is the parsed request when the caller
    has unwrapped it already (rawPredict through Google's client)."""
    with self.metrics.in_flight.track():
      self._check_model(name, version)
      if body is _UNREAD:
        body = await self._body_json(request)
      signature = (body.get('signature_name') or 'serving_default'
                   if isinstance(body, dict) else None)
      if signature is not None and signature not in instances.SIGNATURES:
        raise errors.InvalidInput(
            f'Serving signature name: "{signature}" not found in signature '
            f'def; use one of {", ".join(instances.SIGNATURES)}',
            kind='unknown_signature')
      pixels, form = instances.parse_tfserving(
          body, self.config.max_instances, self.config.max_image_pixels,
          signature)
      p = await self._predict(pixels, version, signature, 'tfserving',
                              request.state.request_id, label)
    headers = {'X-Model-Version': p.model_version}
    if form == 'row':
      return _json({'predictions': self._rows(p)}, headers=headers)
    return _json({'outputs': {'probabilities': p.probabilities.tolist(),
                              'class_ids': p.class_ids.tolist(),
                              'class_names': p.class_names}}, headers=headers)

  async def tfserving_status(self, name: str, version: Optional[str],
                             label: Optional[str] = None) -> responses.Response:
    self._check_model(name, version)
    return _json(await self.backend.status(version, **self._label(label)))

  async def tfserving_metadata(self, name: str, version: Optional[str],
                               label: Optional[str] = None
                               ) -> responses.Response:
    self._check_model(name, version)
    meta = await self.backend.metadata(version, **self._label(label))
    meta.setdefault('model_spec', {})['name'] = name
    return _json(meta)

  async def vertex_predict(self, request: fastapi.Request, project: str,
                           location: str) -> responses.Response:
    with self.metrics.in_flight.track():
      body = await self._body_json(request)
      if not isinstance(body, dict) or 'instances' not in body:
        raise errors.InvalidInput(
            'JSON body must be {"instances": [...], "parameters": {...}}',
            kind='malformed_request')
      unknown = sorted(set(body) - {'instances', 'parameters'})
      if unknown:
        raise errors.InvalidInput(f'unknown fields {unknown}',
                                  kind='malformed_request')
      if not isinstance(body.get('parameters', {}), (dict, type(None))):
        raise errors.InvalidInput('"parameters" must be an object',
                                  kind='malformed_request')
      pixels = instances.batch(body['instances'], '"instances"',
                               self.config.max_instances,
                               self.config.max_image_pixels)
      p = await self._predict(pixels, None, 'serving_default', 'vertex',
                              request.state.request_id)
    name = self.config.model_name
    out = {'predictions': self._rows(p),
           'deployedModelId': self.config.deployed_model_id,
           'model': f'projects/{project}/locations/{location}/models/{name}',
           'modelDisplayName': name,
           'modelVersionId': p.model_version}
    out.update(p.extra)
    return _json(out)

  async def vertex_raw_predict(self, request: fastapi.Request
                               ) -> responses.Response:
    """Vertex's rawPredict: the body goes to the model server (TF Serving's
    predict here) and its answer comes back unchanged.

    Sent raw (curl, `aiplatform.Endpoint.raw_predict`), body and answer are
    TF Serving's JSON. Google's generated client (REST transport, `$alt=json`)
    sends a RawPredictRequest, `{"httpBody": {"contentType", "data": base64}}`,
    and reads the answer as an HttpBody message in the same shape.
    """
    name = self.config.model_name
    if not request.query_params.get('$alt', '').startswith('json'):
      return await self.tfserving_predict(request, name, None)
    message = await self._body_json(request)
    http_body = message.get('httpBody') if isinstance(message, dict) else None
    if not isinstance(http_body, dict) or not isinstance(
        http_body.get('data', ''), str):
      raise errors.InvalidInput(
          'with $alt=json the body must be a RawPredictRequest: {"httpBody": '
          '{"contentType": "application/json", "data": "<base64 JSON>"}}',
          kind='malformed_request')
    try:
      data = base64.b64decode(http_body.get('data', ''), altchars=b'-_',
                              validate=False)
    except (binascii.Error, ValueError):
      raise errors.InvalidInput('"httpBody.data" is not valid base64',
                                kind='bad_base64') from None
    answer = await self.tfserving_predict(request, name, None,
                                          body=self._parse_json(data))
    return _json({'contentType': answer.media_type,
                  'data': base64.b64encode(answer.body).decode('ascii')},
                 headers={'X-Model-Version': answer.headers['X-Model-Version']})

  async def readiness(self) -> responses.Response:
    now = time.monotonic()
    if now - self._ready_at < _READY_CACHE_S:
      return _json({'status': 'ready'})
    if not self.backend.loaded():
      return _json({'status': 'not ready', 'reason': 'no model loaded'}, 503)
    try:
      p = await asyncio.wait_for(
          self.backend.predict(np.zeros((1, features.NUM_PIXELS), np.float32)),
          self.config.backend_timeout_s)
    except Exception as e:  # pylint: disable=broad-except
      reason = e.message if isinstance(e, errors.ServingError) else repr(e)
      return _json({'status': 'not ready', 'reason': reason}, 503)
    self._ready_at = now
    return _json({'status': 'ready', 'model_version': p.model_version})


def create_app(config: ServingConfig,
               backend: Optional[backends.Backend] = None,
               logger: Optional[request_log.RequestLogger] = None,
               metrics: Optional[metrics_lib.Metrics] = None) -> fastapi.FastAPI:
  """Builds the app; backend/logger/metrics default to what `config` says."""
  config.validate()
  metrics = metrics or metrics_lib.Metrics()
  backend = backend or backends.create(config, metrics)
  logger = logger or request_log.create(config.logging, metrics)
  svc = _Service(config, backend, logger, metrics)

  @contextlib.asynccontextmanager
  async def lifespan(_):
    metrics_lib.forget_dead_workers()
    logger.start()
    await backend.start()
    try:
      yield
    finally:
      await backend.close()
      logger.close()  # drains: no loss on a clean shutdown

  app = fastapi.FastAPI(
      title='fmnist serving proxy', version='1',
      description=__doc__.split('\n\n')[0], lifespan=lifespan)
  app.state.service = svc
  app.add_middleware(middleware.GuardMiddleware,
                     max_body_bytes=config.max_body_bytes, metrics=metrics)

  @app.exception_handler(StarletteHTTPException)
  async def _http_error(request: fastapi.Request, exc: StarletteHTTPException):
    kind = {404: 'no_such_route', 405: 'method_not_allowed'}.get(
        exc.status_code, 'http')
    err = errors.ServingError(
        f'{exc.detail}: {request.method} {request.url.path}', kind=kind)
    err.status = exc.status_code
    # Vertex-shaped bodies name a google.rpc code: the client's mistake,
    # not the server's INTERNAL.
    err.grpc_status = _GRPC_STATUS.get(
        exc.status_code,
        'INVALID_ARGUMENT' if exc.status_code < 500 else 'INTERNAL')
    metrics.errors.labels(kind=kind).inc()
    return _json(middleware.error_body(
        request.url.path, err, request.state.request_id), exc.status_code)

  max_n = config.max_instances
  # Label routes answer on every backend (a clear 400 where there are no
  # labels) but are documented only where labels exist.
  labels = backend.supports_labels

  @routes.direct(app, '/predict', 'POST',
                 openapi_extra=schemas.friendly_predict(),
                 summary='Classify one image (upload or JSON pixels)')
  async def predict(request: fastapi.Request):
    return await svc.guarded(request, lambda: svc.friendly(request))

  @routes.direct(app, '/v1/models/{name}:predict', 'POST',
                 summary='TF Serving predict',
                 openapi_extra=schemas.tfserving_predict(max_n))
  async def tfs_predict(request: fastapi.Request, name: str):
    return await svc.guarded(
        request, lambda: svc.tfserving_predict(request, name, None))

  @routes.direct(app, '/v1/models/{name}/versions/{version}:predict', 'POST',
                 summary='TF Serving predict on one version',
                 openapi_extra=schemas.tfserving_predict(max_n))
  async def tfs_predict_version(request: fastapi.Request, name: str,
                                version: str):
    return await svc.guarded(
        request, lambda: svc.tfserving_predict(request, name, version))

  @routes.direct(app, '/v1/models/{name}/labels/{label}:predict', 'POST',
                 summary='TF Serving predict on a version label',
                 openapi_extra=schemas.tfserving_predict(max_n),
                 include_in_schema=labels)
  async def tfs_predict_label(request: fastapi.Request, name: str,
                              label: str):
    return await svc.guarded(
        request, lambda: svc.tfserving_predict(request, name, None, label))

  @routes.direct(app, '/v1/models/{name}', 'GET',
                 summary='TF Serving model status',
                 openapi_extra=schemas.tfserving_get(schemas.STATUS_RESPONSE))
  async def tfs_status(request: fastapi.Request, name: str):
    return await svc.guarded(request, lambda: svc.tfserving_status(name, None))

  @routes.direct(app, '/v1/models/{name}/versions/{version}', 'GET',
                 summary='TF Serving version status',
                 openapi_extra=schemas.tfserving_get(schemas.STATUS_RESPONSE))
  async def tfs_status_version(request: fastapi.Request, name: str,
                               version: str):
    return await svc.guarded(
        request, lambda: svc.tfserving_status(name, version))

  @routes.direct(app, '/v1/models/{name}/labels/{label}', 'GET',
                 summary='TF Serving status of a version label',
                 openapi_extra=schemas.tfserving_get(schemas.STATUS_RESPONSE),
                 include_in_schema=labels)
  async def tfs_status_label(request: fastapi.Request, name: str, label: str):
    return await svc.guarded(
        request, lambda: svc.tfserving_status(name, None, label))

  @routes.direct(app, '/v1/models/{name}/metadata', 'GET',
                 summary='TF Serving model metadata',
                 openapi_extra=schemas.tfserving_get({'type': 'object'}))
  async def tfs_metadata(request: fastapi.Request, name: str):
    return await svc.guarded(request,
                             lambda: svc.tfserving_metadata(name, None))

  @routes.direct(app, '/v1/models/{name}/versions/{version}/metadata', 'GET',
                 summary='TF Serving version metadata',
                 openapi_extra=schemas.tfserving_get({'type': 'object'}))
  async def tfs_metadata_version(request: fastapi.Request, name: str,
                                 version: str):
    return await svc.guarded(
        request, lambda: svc.tfserving_metadata(name, version))

  @routes.direct(app, '/v1/models/{name}/labels/{label}/metadata', 'GET',
                 summary='TF Serving metadata of a version label',
                 openapi_extra=schemas.tfserving_get({'type': 'object'}),
                 include_in_schema=labels)
  async def tfs_metadata_label(request: fastapi.Request, name: str,
                               label: str):
    return await svc.guarded(
        request, lambda: svc.tfserving_metadata(name, None, label))

  @routes.direct(app, '/v1/projects/{project}/locations/{location}/endpoints/'
                 '{endpoint}:predict', 'POST', summary='Vertex AI predict',
                 openapi_extra=schemas.vertex_predict(max_n))
  async def vertex_predict(request: fastapi.Request, project: str,
                           location: str, endpoint: str):
    del endpoint  # any endpoint id: this proxy is the endpoint
    return await svc.guarded(
        request, lambda: svc.vertex_predict(request, project, location))

  @routes.direct(app, '/v1/projects/{project}/locations/{location}/endpoints/'
                 '{endpoint}:rawPredict', 'POST',
                 summary='Vertex AI rawPredict (TF Serving body and answer)',
                 openapi_extra=schemas.tfserving_predict(
                     max_n, schemas.GOOGLE_ERROR))
  async def vertex_raw_predict(request: fastapi.Request, project: str,
                               location: str, endpoint: str):
    # Errors in Google's shape, as for every /v1/projects path.
    del project, location, endpoint
    return await svc.guarded(request, lambda: svc.vertex_raw_predict(request))

  @app.get('/healthz', summary='Alive (the process answers)')
  async def healthz():
    return _json({'status': 'ok'})

  @app.get('/readyz', summary='Ready (a model is loaded and answers)',
           responses={503: {'description': 'not ready'}})
  async def readyz():
    return await svc.readiness()

  @app.get('/metrics', summary='Prometheus metrics',
           response_class=responses.PlainTextResponse)
  async def prometheus_metrics():
    import prometheus_client  # pylint: disable=g-import-not-at-top
    return responses.Response(metrics.exposition(),
                              media_type=prometheus_client.CONTENT_TYPE_LATEST)

  if config.auth_token:
    _document_auth(app)
  return app


def create_app_from_env() -> fastapi.FastAPI:
  """The app of one worker process: uvicorn calls this in each worker."""
  return create_app(ServingConfig.from_json(os.environ[config_lib.CONFIG_ENV]))


def _document_auth(app: fastapi.FastAPI) -> None:
  """Adds the token schemes to the OpenAPI spec of the protected routes."""
  original = app.openapi

  def openapi():
    if app.openapi_schema:
      return app.openapi_schema
    spec = original()
    spec.setdefault('components', {})['securitySchemes'] = {
        'bearer': {'type': 'http', 'scheme': 'bearer'},
        'apiKey': {'type': 'apiKey', 'in': 'header', 'name': 'X-API-Key'}}
    for path, ops in spec['paths'].items():
      if path in ('/healthz', '/readyz', '/metrics'):
        continue
      for op in ops.values():
        op['security'] = [{'bearer': []}, {'apiKey': []}]
    app.openapi_schema = spec
    return spec

  app.openapi = openapi
