"""Starts the proxy: checks that it can serve, then runs uvicorn.

`fmnist serve` builds a `ServingConfig`, calls `check(...)` (what stops a
server from starting and a user can fix, such as no pushed model or a port in
use, is a `CannotServe` error), then `serve(...)`.
"""

import os
import shutil
import socket
import tempfile

from pipeline.errors import UserError
from serving import config as cfg_lib


class CannotServe(UserError):
  """The server cannot start as configured; the message says what to do."""


def check_port(host: str, port: int) -> None:
  if not 0 <= port <= 65535:
    raise CannotServe(f'--port {port}: expected a TCP port, 0 to 65535')
  with socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET) as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
      s.bind((host, port))
    except OSError as e:
      raise CannotServe(f'cannot listen on {host}:{port} ({e.strerror}); '
                        'pass another --port') from None


def preflight(config: cfg_lib.ServingConfig) -> None:
  """A local backend needs a pushed model before the server starts."""
  if config.backend != 'local':
    return
  if '://' in config.serving_dir:
    # TFX's file system layer reads gs://; it is heavy, so only then.
    from pipeline import pusher  # pylint: disable=g-import-not-at-top
    versions = pusher.pushed_versions(config.serving_dir)
  else:  # same rule as pusher.pushed_versions, without importing TensorFlow
    d = config.serving_dir
    versions = [n for n in (os.listdir(d) if os.path.isdir(d) else [])
                if n.isdigit() and os.path.exists(
                    os.path.join(d, n, 'saved_model.pb'))]
  if not versions:
    raise CannotServe(
        f'no pushed model under {config.serving_dir}: run `fmnist run` (or '
        'pass --home/--serving-dir)')


def check(config: cfg_lib.ServingConfig, host: str, port: int) -> None:
  """Raises `CannotServe` if `serve` could not start; call it first."""
  preflight(config)
  check_port(host, port)


def serve(config: cfg_lib.ServingConfig, host: str, port: int,
          verbose: bool = False) -> None:
  """Serves until stopped (SIGINT/SIGTERM drain the request log)."""
  import uvicorn  # pylint: disable=g-import-not-at-top
  server = dict(host=host, port=port,
                log_level='info' if verbose else 'warning', access_log=verbose,
                timeout_graceful_shutdown=30)
  if config.workers == 1:
    from serving import app as app_lib  # pylint: disable=g-import-not-at-top
    uvicorn.Server(uvicorn.Config(app_lib.create_app(config), **server)).run()
    return
  _run_workers(config, server, verbose)


def _run_workers(config: cfg_lib.ServingConfig, server: dict,
                 verbose: bool) -> None:
  """Runs `config.workers` uvicorn processes on one socket.

  Workers are spawned (not forked: TensorFlow must not be forked) and build
  their app from the config in the environment. uvicorn restarts a worker
  that dies and forwards SIGTERM, so each drains its request log on shutdown.
  """
  import uvicorn  # pylint: disable=g-import-not-at-top
  from serving import metrics  # pylint: disable=g-import-not-at-top
  owned_dir = None
  if not os.environ.get(metrics.MULTIPROC_ENV):
    owned_dir = tempfile.mkdtemp(prefix='fmnist-metrics-')
    os.environ[metrics.MULTIPROC_ENV] = owned_dir
  os.environ[cfg_lib.CONFIG_ENV] = config.to_json()
  if not verbose:  # as quiet as one process (`fmnist` filters warnings)
    os.environ.setdefault('PYTHONWARNINGS', 'ignore')
  try:
    # A worker answers uvicorn's health pings from a thread; give a slow
    # TensorFlow import on a busy machine room before it is killed.
    uvicorn.run('serving.app:create_app_from_env', factory=True,
                workers=config.workers, timeout_worker_healthcheck=60,
                **server)
  finally:
    if owned_dir:
      shutil.rmtree(owned_dir, ignore_errors=True)
