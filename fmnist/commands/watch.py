"""`fmnist watch DIR`: new IDX files -> the next span -> a pipeline run.

Looks at DIR (local or gs://) every --interval seconds, or once (--once: what
the Cloud Run job of infra/deploy_trigger.sh runs on each new object). When
all four IDX files are there and complete (sizes steady for --settle seconds,
or the --marker file present), it validates and ingests them once as the next
span and runs the pipeline on it (--runner local, the default) or submits it
to Vertex AI (--runner vertex, spans then go to the Vertex data root). The
same files again do nothing: their fingerprint is recorded under --state-dir.
"""

import dataclasses
import os

from fmnist import options


def register(sub) -> None:
  p = sub.add_parser('watch', help='ingest new IDX files in a directory as '
                     'the next span and run the pipeline on it')
  p.add_argument('source', metavar='DIR',
                 help='directory (local or gs://) the four IDX files land in')
  options.add_home(p)
  p.add_argument('--once', action='store_true',
                 help='look once and exit (for event triggers and cron)')
  p.add_argument('--interval', type=float, default=30.0,
                 help='seconds between looks (default %(default)s)')
  p.add_argument('--settle', type=float, default=5.0,
                 help='local files count as complete when their sizes are '
                      'unchanged this many seconds apart (default %(default)s)')
  p.add_argument('--marker', default=None,
                 help='instead, wait for this file (e.g. _SUCCESS) in DIR')
  p.add_argument('--state-dir', default=None,
                 help='where ingested file sets are recorded, local or gs:// '
                      '(default HOME/watch)')
  p.add_argument('--no-run', action='store_true',
                 help='only ingest; do not run or submit the pipeline')
  p.add_argument('--runner', choices=('local', 'vertex'), default='local')
  options.add_ingest_slices(p)
  options.add_pipeline_knobs(p)
  options.add_vertex_args(p)
  p.set_defaults(func=run)


def run(args) -> int:
  from pipeline import watch  # pylint: disable=g-import-not-at-top
  pipeline_cfg = options.run_pipeline_config(args)
  # Spans go where the pipeline reads them: HOME/data, or the Vertex data root.
  ingest_cfg = dataclasses.replace(options.ingest_config(args),
                                   output_dir=pipeline_cfg.data_root)
  cfg = watch.WatchConfig(
      source_dir=args.source.rstrip('/') or '/',
      state_dir=args.state_dir or os.path.join(os.path.abspath(args.home),
                                               'watch'),
      ingest=ingest_cfg, pipeline=None if args.no_run else pipeline_cfg,
      marker=args.marker, settle_seconds=args.settle,
      interval_seconds=args.interval, once=args.once)
  try:
    watch.watch(cfg, lambda event: print(event.line(), flush=True))
  except KeyboardInterrupt:
    return 0
  return 0
