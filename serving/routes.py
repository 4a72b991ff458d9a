"""A FastAPI route that hands the request straight to its endpoint.

The proxy's routes take `(request, **path params)`, read and validate bodies
themselves, return a finished Response and turn every failure into one
(`_Service.guarded`). FastAPI's per-request machinery around such an endpoint
(dependency solving, two exit stacks, body sniffing, exception wrapping)
does nothing for them yet was a fifth of a predict request's CPU. The route
still matches, sets `scope["route"]` and documents itself like any APIRoute;
an exception that does escape reaches the app's ExceptionMiddleware, which
holds the same handlers the per-route wrapper would have used.
"""

from fastapi import routing
from starlette.requests import Request


class DirectRoute(routing.APIRoute):
  """An APIRoute whose endpoint is awaited with the request and path params."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    endpoint = self.endpoint

    async def app(scope, receive, send):
      request = Request(scope, receive, send)
      response = await endpoint(request=request, **scope['path_params'])
      await response(scope, receive, send)

    self.app = app


def direct(app, path: str, method: str, **kwargs):
  """Like `@app.post(path, **kwargs)`, registering a DirectRoute."""
  def register(endpoint):
    app.router.add_api_route(path, endpoint, methods=[method],
                             route_class_override=DirectRoute, **kwargs)
    return endpoint
  return register
