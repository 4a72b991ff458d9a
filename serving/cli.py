"""`fmnist serve`: the prediction proxy, locally or as the Cloud Run container.

Flags map one-to-one onto `serving.config.ServingConfig`. Errors a user can
fix (no pushed model, port taken, bad flag values) print one `error:` line
and exit 2.
"""

import argparse
import logging
import os
import shutil
import socket
import sys
import tempfile

from serving import config as cfg_lib

_log = logging.getLogger(__name__)
TOKEN_ENV = 'FMNIST_SERVING_TOKEN'


class _UsageError(Exception):
  pass


def _default_home() -> str:
  from pipeline import configs  # pylint: disable=g-import-not-at-top
  return configs.DEFAULT_HOME


def register(subparsers) -> None:
  """Adds the `serve` subcommand to the `fmnist` CLI."""
  p = subparsers.add_parser(
      'serve', help='serve the latest pushed model over HTTP',
      description='Serve the newest model pushed under HOME/serving_model '
                  '(or TF Serving, or a Vertex AI Endpoint) behind TF '
                  'Serving- and Vertex-compatible routes plus POST /predict.')
  g = p.add_argument_group('model')
  g.add_argument('--backend', choices=cfg_lib.BACKENDS, default='local',
                 help='local: load the SavedModel in-process (default); '
                      'tfserving: forward to TF Serving; vertex: forward to '
                      'a Vertex AI Endpoint')
  g.add_argument('--home', default=_default_home(),
                 help='pipeline working directory (default: %(default)s)')
  g.add_argument('--serving-dir', default=None,
                 help='versioned SavedModel directory (default: '
                      'HOME/serving_model)')
  g.add_argument('--model-name', default=cfg_lib.DEFAULT_MODEL_NAME,
                 help='name in /v1/models/NAME (default: %(default)s)')
  g.add_argument('--poll-seconds', type=float, default=5.0,
                 help='how often to look for a newly pushed version')
  g.add_argument('--tfserving-url', default='http://127.0.0.1:8501',
                 help='TF Serving address: http://HOST:8501 for its REST API '
                      '(default: %(default)s) or grpc://HOST:8500 for gRPC')
  g.add_argument('--vertex-endpoint', default='',
                 help='projects/PROJECT/locations/REGION/endpoints/ID')
  g.add_argument('--vertex-api-endpoint', default=None,
                 help='override the Vertex API host (default: '
                      'REGION-aiplatform.googleapis.com)')
  g.add_argument('--backend-timeout', type=float, default=10.0,
                 help='seconds to wait for a prediction (default: %(default)s)')
  g = p.add_argument_group('server')
  g.add_argument('--host', default='127.0.0.1',
                 help='bind address; 0.0.0.0 in a container')
  g.add_argument('--port', type=int, default=int(os.environ.get('PORT', 8080)),
                 help='port (default: $PORT or 8080)')
  g.add_argument('--workers', type=int,
                 default=int(os.environ.get('WEB_CONCURRENCY', 1)),
                 help='server processes sharing the port, about one per CPU; '
                      'each loads its own copy of a local model (default: '
                      '$WEB_CONCURRENCY or 1)')
  g.add_argument('--max-batch-size', type=int, default=64,
                 help='images per model call when batching (default: 64)')
  g.add_argument('--batch-wait-ms', type=float, default=2.0,
                 help='longest wait for more requests while others are in '
                      'flight (default: 2)')
  g.add_argument('--no-batching', action='store_true',
                 help='one model call per request')
  g = p.add_argument_group('limits and auth')
  g.add_argument('--max-body-bytes', type=int,
                 default=cfg_lib.DEFAULT_MAX_BODY_BYTES,
                 help='largest request body (default: %(default)s, Vertex\'s '
                      '1.5 MB)')
  g.add_argument('--max-instances', type=int, default=64,
                 help='most images per request (default: %(default)s)')
  g.add_argument('--token', default=os.environ.get(TOKEN_ENV),
                 help=f'require this bearer token / X-API-Key (default: '
                      f'${TOKEN_ENV}; unset = no auth). On Cloud Run use IAM '
                      '(--no-allow-unauthenticated) instead.')
  g = p.add_argument_group('request logging')
  g.add_argument('--log-sink', choices=cfg_lib.LOG_SINKS, default='jsonl',
                 help='where served instances go (default: %(default)s)')
  g.add_argument('--log-dir', default=None,
                 help='JSONL directory (default: HOME/request_logs)')
  g.add_argument('--log-sample-rate', type=float, default=1.0,
                 help='share of requests logged, 0..1 (default: 1)')
  g.add_argument('--log-max-mb', type=float, default=64,
                 help='rotate JSONL files at this size (default: 64)')
  g.add_argument('--bq-table', default='',
                 help='project.dataset.table for --log-sink bigquery')
  p.set_defaults(func=cmd_serve)


def config_from_args(args) -> cfg_lib.ServingConfig:
  home = os.path.abspath(args.home)
  log = cfg_lib.LogConfig(
      sink=args.log_sink,
      directory=args.log_dir or os.path.join(home, 'request_logs'),
      sample_rate=args.log_sample_rate,
      max_file_bytes=int(args.log_max_mb * 1024 * 1024),
      bigquery_table=args.bq_table)
  batching = cfg_lib.BatchingConfig(
      enabled=not args.no_batching, max_batch_size=args.max_batch_size,
      max_wait_ms=args.batch_wait_ms)
  return cfg_lib.ServingConfig(
      backend=args.backend, model_name=args.model_name,
      serving_dir=args.serving_dir or os.path.join(home, 'serving_model'),
      poll_seconds=args.poll_seconds, tfserving_url=args.tfserving_url,
      vertex_endpoint=args.vertex_endpoint,
      vertex_api_endpoint=args.vertex_api_endpoint,
      backend_timeout_s=args.backend_timeout,
      max_body_bytes=args.max_body_bytes, max_instances=args.max_instances,
      auth_token=args.token or None, batching=batching, logging=log,
      workers=args.workers).validate()


def _check_port(host: str, port: int) -> None:
  with socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET) as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
      s.bind((host, port))
    except OSError as e:
      raise _UsageError(f'cannot listen on {host}:{port} ({e.strerror}); '
                        'pass another --port') from None


def _preflight(config: cfg_lib.ServingConfig) -> None:
  if config.backend != 'local':
    return
  if '://' in config.serving_dir:
    from pipeline import pusher  # pylint: disable=g-import-not-at-top
    versions = pusher.pushed_versions(config.serving_dir)
  else:  # same rule as pusher.pushed_versions, without importing TensorFlow
    d = config.serving_dir
    versions = [n for n in (os.listdir(d) if os.path.isdir(d) else [])
                if n.isdigit() and os.path.exists(
                    os.path.join(d, n, 'saved_model.pb'))]
  if not versions:
    raise _UsageError(
        f'no pushed model under {config.serving_dir}: run `fmnist run` (or '
        'pass --home/--serving-dir)')


def cmd_serve(args) -> int:
  try:
    config = config_from_args(args)
    _preflight(config)
    _check_port(args.host, args.port)
  except (cfg_lib.ServingConfigError, _UsageError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  import uvicorn  # pylint: disable=g-import-not-at-top
  verbose = getattr(args, 'verbose', False)
  server = dict(host=args.host, port=args.port,
                log_level='info' if verbose else 'warning', access_log=verbose,
                timeout_graceful_shutdown=30)
  workers = (f' with {config.workers} worker processes'
             if config.workers > 1 else '')
  print(f'serving {config.backend} model "{config.model_name}" on '
        f'http://{args.host}:{args.port}{workers} (docs at /docs)', flush=True)
  if config.workers == 1:
    from serving import app as app_lib  # pylint: disable=g-import-not-at-top
    uvicorn.Server(uvicorn.Config(app_lib.create_app(config), **server)).run()
    return 0
  _run_workers(config, server, verbose)
  return 0


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


def main(argv=None) -> int:
  """`python -m serving.cli` runs `serve` without the rest of the CLI."""
  parser = argparse.ArgumentParser(prog='serving')
  parser.add_argument('-v', '--verbose', action='store_true')
  register(parser.add_subparsers(dest='command', required=True))
  args = parser.parse_args(argv)
  logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
  return args.func(args)


if __name__ == '__main__':
  sys.exit(main())
