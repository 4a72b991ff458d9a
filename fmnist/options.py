"""Flags shared by several commands, and how they become typed configs.

Commands only parse: `pipeline_config(args)`, `vertex_config(args)` and
`ingest_config(args, ...)` turn parsed flags (plus `FMNIST_*` variables and a
`--config` file for the Vertex settings) into the frozen configs the library
functions take. Nothing below the command layer sees an argparse namespace.
"""

import argparse
import json
import os
from typing import Any, Dict, Mapping, Optional

from models.config import ModelConfig
from pipeline import configs
from pipeline import vertex_config as vc
from pipeline.errors import UserError


class UsageError(UserError):
  """A problem with the command line that the user can fix."""


def add_home(p: argparse.ArgumentParser) -> None:
  p.add_argument('--home', default=configs.DEFAULT_HOME,
                 help='working directory for spans, pipeline outputs, MLMD and '
                      'the serving directory (default: %(default)s)')


def add_ingest_args(p: argparse.ArgumentParser) -> None:
  p.add_argument('--source', default=configs.DEFAULT_SOURCE_DIR,
                 help='directory (local or gs://) with the four IDX .gz files '
                      '(default: %(default)s)')
  add_ingest_slices(p)


def add_ingest_slices(p: argparse.ArgumentParser) -> None:
  """Which part of the IDX files a span takes (`ingest`, `watch`)."""
  p.add_argument('--train-limit', type=int, default=None,
                 help='take only this many official train images')
  p.add_argument('--train-offset', type=int, default=0)
  p.add_argument('--test-limit', type=int, default=None,
                 help='take only this many official test images')
  p.add_argument('--test-offset', type=int, default=0)
  p.add_argument('--eval-fraction', type=float,
                 default=configs.DEFAULT_EVAL_FRACTION,
                 help='share of train images held out as `eval` (default: '
                      '%(default)s)')


def ingest_config(args, span: Optional[int] = None):
  """The `IngestConfig` of `--source`, the slices and HOME/data."""
  from pipeline import ingest  # TensorFlow: only when a command ingests
  return ingest.IngestConfig(
      source_dir=args.source,
      output_dir=os.path.join(os.path.abspath(args.home), 'data'),
      span=span, train_limit=args.train_limit,
      train_offset=args.train_offset, test_limit=args.test_limit,
      test_offset=args.test_offset, eval_fraction=args.eval_fraction)


def add_pipeline_knobs(p) -> None:
  """Model and blessing knobs of a run (also `fmnist monitor`'s retraining)."""
  p.add_argument('--epochs', type=int, default=None,
                 help='maximum training epochs (default: the model config)')
  p.add_argument('--min-accuracy', type=float, default=None,
                 help='test accuracy a model needs to be blessed')
  p.add_argument('--max-accuracy-drop', type=float, default=None,
                 help='block a candidate worse than the latest blessed model '
                      'by more than this accuracy (default 0.01) and '
                      'significantly (see --blessing-alpha)')
  p.add_argument('--blessing-alpha', type=float, default=None,
                 help='significance level of the paired test (McNemar exact) '
                      'a drop must reach to block the candidate (default '
                      '0.05; 1 = block on any drop beyond the margin)')
  p.add_argument('--no-cache', action='store_true',
                 help='rerun every component even if its inputs are unchanged')
  p.add_argument('--model-param', action='append', default=[],
                 metavar='KEY=VALUE',
                 help='override a ModelConfig field (models/config.py), e.g. '
                      'convs_per_block=1 or conv_filters=[16,32]; repeatable')


def model_overrides(pairs) -> Dict[str, Any]:
  """`--model-param KEY=VALUE` pairs as ModelConfig overrides: a JSON number,
  boolean or list of the default's type, or the text itself where the default
  is a string (e.g. lr_schedule=cosine)."""
  defaults = ModelConfig().to_dict()
  values = {}
  for pair in pairs:
    key, sep, text = pair.partition('=')
    if not sep:
      raise UsageError(f'--model-param {pair!r}: expected KEY=VALUE')
    if key not in defaults:
      raise UsageError(f'--model-param: unknown key {key!r}; known: '
                       f'{", ".join(sorted(defaults))}')
    default = defaults[key]
    if isinstance(default, str):  # e.g. lr_schedule=cosine
      values[key] = text
      continue
    try:
      value = json.loads(text)
    except json.JSONDecodeError:
      raise UsageError(f'--model-param {pair!r}: the value must be a JSON '
                       'number, boolean or list') from None
    if (isinstance(default, bool) != isinstance(value, bool) or
        isinstance(default, list) != isinstance(value, list) or
        (isinstance(default, int) and not isinstance(value, int)) or
        not isinstance(value, (int, float, list))):
      raise UsageError(f'--model-param {key}: {text!r} is not a '
                       f'{type(default).__name__} like the default {default!r}')
    values[key] = value
  return values


def model_config(args) -> ModelConfig:
  """ModelConfig defaults, then --model-param overrides, then --epochs."""
  values = {**ModelConfig().to_dict(), **model_overrides(args.model_param)}
  if args.epochs is not None:
    values['epochs'] = args.epochs
  if values['epochs'] < 1:
    raise UsageError('--epochs must be at least 1')
  try:
    return ModelConfig.from_dict(values)
  except ValueError as e:
    raise UsageError(f'--model-param: {e}') from None


def pipeline_config(args) -> configs.PipelineConfig:
  """The local `PipelineConfig` of HOME and the knobs above."""
  overrides = {}
  if args.min_accuracy is not None:
    overrides['min_accuracy'] = args.min_accuracy
  if args.max_accuracy_drop is not None:
    overrides['max_accuracy_drop'] = args.max_accuracy_drop
  if getattr(args, 'blessing_alpha', None) is not None:
    overrides['blessing_alpha'] = args.blessing_alpha
  if args.no_cache:
    overrides['enable_cache'] = False
  return configs.PipelineConfig.from_home(
      args.home, model=model_config(args), **overrides)


_VERTEX_HELP = {
    'project': 'GCP project ID',
    'region': 'Vertex AI / Dataflow region, e.g. us-central1',
    'bucket': 'GCS bucket for pipeline root, data, temp files and the model',
    'pipeline_root': 'gs:// pipeline root (default gs://BUCKET/pipeline_root/'
                     'PIPELINE_NAME)',
    'data_root': 'gs:// directory with span-N/ (default gs://BUCKET/data)',
    'serving_dir': 'gs:// directory the Pusher writes and the serving proxy '
                   'reads (default gs://BUCKET/serving_model)',
    'schema_dir': 'directory with schema.pbtxt inside the pipeline image '
                  f'(default {vc.SETTINGS["schema_dir"].default})',
    'image': 'pipeline image URI with tag, e.g. REGION-docker.pkg.dev/PROJECT/'
             'REPO/fmnist-pipeline:TAG',
    'repository': 'Artifact Registry repository (with --image-tag, instead of '
                  '--image)',
    'image_tag': 'pipeline image tag (with --repository)',
    'service_account': 'service account the pipeline (and Dataflow) runs as',
    'training_service_account': 'service account of Vertex Training jobs '
                                '(default: --service-account)',
    'dataflow': 'run Beam components on Dataflow (default: yes)',
    'dataflow_machine_type': 'Dataflow worker machine type (default '
                             'n1-standard-4)',
    'dataflow_max_workers': 'Dataflow autoscaling limit (default 4)',
    'dataflow_disk_size_gb': 'Dataflow worker disk (default 50)',
    'vertex_training': 'train on Vertex Training (default: yes; no = inside '
                       'the pipeline step)',
    'training_machine_type': 'Vertex Training machine type (default '
                             'n1-standard-8)',
    'training_image': 'trainer image (default: the pipeline image; a GPU needs '
                      'CUDA in it)',
    'accelerator_type': 'GPU for training, e.g. NVIDIA_TESLA_T4',
    'accelerator_count': 'number of GPUs',
    'endpoint': 'also deploy blessed models to this Vertex Endpoint (display '
                'name)',
    'prediction_image': 'Vertex prediction container; with it each push is '
                        'a new version of --registry-model (and --endpoint '
                        'serves it)',
    'registry_model': 'Model Registry model ID whose versions the pushes are '
                      '(default fmnist-cnn)',
    'registry_aliases': 'comma-separated aliases moved to each new version '
                        '(default blessed,serving)',
    'experiment': 'Vertex AI Experiments name (default: the pipeline name)',
    'tensorboard': 'Vertex TensorBoard resource for per-epoch time series',
    'labels': 'KEY=VALUE label on the job (repeatable; env: k=v,k2=v2)',
    'params': 'NAME=VALUE runtime parameter of the job, overriding the '
              'configured value (repeatable; env: a=b,c=d; known: '
              + ', '.join(sorted(vc.RUNTIME_PARAMETERS)) + ')',
    'output': 'where to write the compiled spec (default pipeline.json)',
    'api_endpoint': 'Vertex API endpoint override (e.g. Private Service '
                    'Connect)',
    'wait': 'follow the job until it ends; exit non-zero if it fails',
    'poll_seconds': 'seconds between state checks with --wait (default 30)',
    'check_image': 'check that the image exists before submitting '
                   '(default: yes)',
}


def add_vertex_args(parser) -> None:
  """The Vertex settings as flags (`pipeline run/compile`, `monitor`).

  Every flag defaults to None so the environment and the config file can fill
  in what the command line leaves out.
  """
  group = parser.add_argument_group(
      'Vertex AI (--runner vertex)',
      'Each flag can also come from FMNIST_<NAME> (e.g. FMNIST_PROJECT) or '
      'from the --config file; flags win.')
  group.add_argument('--config', default=None,
                     help='YAML/JSON file of settings (env: FMNIST_CONFIG)')
  for name, field in vc.SETTINGS.items():
    kwargs: Dict[str, Any] = dict(default=None, help=_VERTEX_HELP[name])
    if name in ('labels', 'params'):
      group.add_argument(vc.flag_name(name), dest=name, action='append',
                         **kwargs)
      continue
    if name == 'wait':
      kwargs['action'] = 'store_true'
    elif isinstance(field.default, bool):
      kwargs['action'] = argparse.BooleanOptionalAction
    elif isinstance(field.default, int):
      kwargs['type'] = int
    elif isinstance(field.default, float):
      kwargs['type'] = float
    group.add_argument(vc.flag_name(name), dest=name, **kwargs)


def vertex_config(args, environ: Optional[Mapping[str, str]] = None
                  ) -> vc.VertexConfig:
  """The validated Vertex settings: flags > FMNIST_* > --config file."""
  environ = os.environ if environ is None else environ
  config_path = getattr(args, 'config', None) or environ.get(
      vc.env_name('config'))
  file_values = vc.load_file(config_path) if config_path else {}
  flags = {name: getattr(args, name, None) for name in vc.SETTINGS}
  return vc.VertexConfig.from_sources(flags, environ, file_values)


def vertex_pipeline_config(args) -> configs.PipelineConfig:
  """The Vertex `PipelineConfig`: the local knobs with the Vertex settings."""
  return vc.for_vertex(pipeline_config(args), vertex_config(args))


def run_pipeline_config(args) -> configs.PipelineConfig:
  """What `--runner local|vertex` runs: a local or a Vertex pipeline config."""
  if args.runner == 'vertex':
    return vertex_pipeline_config(args)
  return pipeline_config(args)

