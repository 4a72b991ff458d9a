"""The lifecycle shared by the loopback fakes of remote APIs (tests only).

A threaded HTTP server on 127.0.0.1, on a free port, started and stopped with
`with`. Each fake brings its own request handler speaking the real format.
"""

import socket
import threading
from http.server import ThreadingHTTPServer


def free_port() -> int:
  """A port nothing listens on: for servers to start, or to find closed."""
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


class Loopback:

  def __init__(self, handler_cls):
    self._server = ThreadingHTTPServer(('127.0.0.1', 0), handler_cls)
    self._server.daemon_threads = True
    self.port = self._server.server_address[1]
    self.url = f'http://127.0.0.1:{self.port}'
    self._thread = threading.Thread(target=self._server.serve_forever,
                                    daemon=True)

  def __enter__(self):
    self._thread.start()
    return self

  def __exit__(self, *exc):
    self._server.shutdown()
    self._server.server_close()
