"""`fmnist run`: the main job, from the real dataset to a pushed model.

Ingests the source as span 1 if HOME has no span yet, runs the local pipeline,
prints the run's summary and writes the HTML report.
"""

from fmnist import options
from models import runtime


def register(sub) -> None:
  p = sub.add_parser('run', help='main job: ingest the real data if needed, '
                                 'run the local pipeline, summarize, report')
  options.add_home(p)
  options.add_pipeline_knobs(p)
  options.add_ingest_args(p)
  p.set_defaults(func=run)


def run(args) -> int:
  runtime.prefer_onednn(True)  # the Trainer runs in this process
  # pylint: disable=g-import-not-at-top
  from pipeline import ingest
  from pipeline import local_runner
  from pipeline import report
  from pipeline import summary
  # pylint: enable=g-import-not-at-top
  cfg = options.pipeline_config(args)
  if not ingest.existing_spans(cfg.data_root):
    print(f'ingesting {args.source} as span 1 ...', flush=True)
    print(f'wrote {ingest.ingest(options.ingest_config(args))}')
  print(summary.format_summary(local_runner.run_local(cfg)))
  print(f'report: {report.write_report(cfg)}')
  print(f'machine: {runtime.machine()}')  # what the times above ran on
  return 0
