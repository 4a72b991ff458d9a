"""Where predictions come from: in-process, TF Serving, or a Vertex Endpoint."""

from serving.backends.base import Backend
from serving.backends.base import Prediction


def create(config, metrics) -> Backend:
  """The backend `config.backend` names (imported lazily: TF is heavy)."""
  if config.backend == 'local':
    from serving.backends import local
    return local.LocalBackend(config, metrics)
  if config.backend == 'tfserving' and config.tfserving_url.startswith(
      'grpc://'):
    from serving.backends import tfserving_grpc
    return tfserving_grpc.TFServingGrpcBackend(config)
  if config.backend == 'tfserving':
    from serving.backends import tfserving
    return tfserving.TFServingBackend(config)
  from serving.backends import vertex
  return vertex.VertexBackend(config)


__all__ = ['Backend', 'Prediction', 'create']
