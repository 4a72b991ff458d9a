"""Errors a client can act on, each with its HTTP status and a metric kind.

Handlers raise these; the app turns them into `{"error": ...}` JSON in the
shape each API expects. Anything else is a bug: logged with its traceback on
the server, answered with a 500 that names the request id, never a traceback.
"""

from typing import Optional


class ServingError(Exception):
  status = 500
  kind = 'internal'
  grpc_status = 'INTERNAL'  # the google.rpc code name Vertex clients expect

  def __init__(self, message: str, kind: Optional[str] = None):
    super().__init__(message)
    self.message = message
    if kind:
      self.kind = kind


class InvalidInput(ServingError):
  status = 400
  kind = 'invalid_input'
  grpc_status = 'INVALID_ARGUMENT'


class Unauthorized(ServingError):
  status = 401
  kind = 'unauthorized'
  grpc_status = 'UNAUTHENTICATED'


class NotFound(ServingError):
  status = 404
  kind = 'not_found'
  grpc_status = 'NOT_FOUND'


class PayloadTooLarge(ServingError):
  status = 413
  kind = 'body_too_large'
  grpc_status = 'INVALID_ARGUMENT'


class UnsupportedMediaType(ServingError):
  status = 415
  kind = 'unsupported_media_type'
  grpc_status = 'INVALID_ARGUMENT'


class BackendError(ServingError):
  """The backend answered with an error we cannot blame on the client."""
  status = 502
  kind = 'backend_error'
  grpc_status = 'INTERNAL'


class BackendUnavailable(ServingError):
  status = 503
  kind = 'backend_unavailable'
  grpc_status = 'UNAVAILABLE'


class BackendTimeout(ServingError):
  status = 504
  kind = 'backend_timeout'
  grpc_status = 'DEADLINE_EXCEEDED'
