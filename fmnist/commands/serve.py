"""`fmnist serve`: the prediction proxy, locally or as the Cloud Run container.

Flags map one-to-one onto `serving.config.ServingConfig`; `serving.server`
checks that it can serve and runs it.
"""

import os

from models import runtime
from pipeline import configs
from serving import config as cfg_lib

TOKEN_ENV = 'FMNIST_SERVING_TOKEN'


def register(sub) -> None:
  p = sub.add_parser(
      'serve', help='serve the latest pushed model over HTTP',
      description='Serve the newest model pushed under HOME/serving_model '
                  '(or TF Serving, or a Vertex AI Endpoint) behind TF '
                  'Serving- and Vertex-compatible routes plus POST /predict.')
  g = p.add_argument_group('model')
  g.add_argument('--backend', choices=cfg_lib.BACKENDS, default='local',
                 help='local: load the SavedModel in-process (default); '
                      'tfserving: forward to TF Serving; vertex: forward to '
                      'a Vertex AI Endpoint')
  g.add_argument('--home', default=configs.DEFAULT_HOME,
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
  p.set_defaults(func=run)


def serving_config(args) -> cfg_lib.ServingConfig:
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


def run(args) -> int:
  runtime.prefer_onednn(False)  # batch-1 inference is slower with oneDNN
  from serving import server  # pylint: disable=g-import-not-at-top
  config = serving_config(args)
  server.check(config, args.host, args.port)
  workers = (f' with {config.workers} worker processes'
             if config.workers > 1 else '')
  print(f'serving {config.backend} model "{config.model_name}" on '
        f'http://{args.host}:{args.port}{workers} (docs at /docs)', flush=True)
  server.serve(config, args.host, args.port, getattr(args, 'verbose', False))
  return 0
