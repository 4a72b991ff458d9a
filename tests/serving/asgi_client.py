"""A blocking client for the ASGI app over httpx's ASGITransport.

The app runs on one event loop in a background thread with its lifespan
started (the transport alone skips lifespan), so tests can be plain functions
and can call it from many threads at once to exercise micro-batching.
"""

import asyncio
import inspect
import threading

import httpx


class AppClient:
  """`with AppClient(app) as c: c.post(...)` -> httpx.Response."""

  def __init__(self, app):
    self.app = app
    self._loop = asyncio.new_event_loop()
    self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
    self._lifespan = None
    self._client = None
    self._open = False

  def _call(self, coro):
    return asyncio.run_coroutine_threadsafe(coro, self._loop).result(120)

  def __enter__(self):
    self._thread.start()

    async def start():
      self._lifespan = self.app.router.lifespan_context(self.app)
      await self._lifespan.__aenter__()
      self._client = httpx.AsyncClient(
          transport=httpx.ASGITransport(app=self.app),
          base_url='http://proxy.test')

    self._call(start())
    self._open = True
    return self

  def __exit__(self, *exc):
    if not self._open:
      return
    self._open = False

    async def stop():
      await self._client.aclose()
      await self._lifespan.__aexit__(None, None, None)

    self._call(stop())
    self._loop.call_soon_threadsafe(self._loop.stop)
    self._thread.join(10)

  def request(self, method, url, **kwargs) -> httpx.Response:
    content = kwargs.get('content')
    if inspect.isgenerator(content):
      chunks = list(content)

      async def agen():
        for c in chunks:
          yield c
      kwargs['content'] = agen()
    return self._call(self._client.request(method, url, **kwargs))

  def get(self, url, **kwargs):
    return self.request('GET', url, **kwargs)

  def post(self, url, **kwargs):
    return self.request('POST', url, **kwargs)
