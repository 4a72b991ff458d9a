"""The one pipeline definition, shared by every runner.

ExampleGen -> StatisticsGen -> ImportSchemaGen (+ SchemaGen to diff against)
-> ExampleValidator -> DataGate -> Transform -> Trainer (from scratch, or with
`warm_start_epochs` from BaseModel's blessed model of an earlier span)
-> Evaluator -> Blessing -> Pusher.
"""

from typing import List

from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts

from models import features
from models import trainer as trainer_lib
from pipeline import base_model
from pipeline import blessing as blessing_lib
from pipeline import configs
from pipeline import data_gate
from pipeline import evaluation
from pipeline import pusher as pusher_lib
from pipeline import reference_component

PREPROCESSING_FN = 'models.preprocessing.preprocessing_fn'
RUN_FN = 'models.trainer.run_fn'


def _input_config() -> example_gen_pb2.Input:
  """Each split of the newest span: `span-{SPAN}/<split>/*`."""
  return example_gen_pb2.Input(splits=[
      example_gen_pb2.Input.Split(name=split,
                                  pattern=f'span-{{SPAN}}/{split}/*')
      for split in features.SPLITS])


def create_components(cfg: configs.PipelineConfig) -> List:
  input_base = cfg.data_root
  if cfg.vertex is not None:
    # A runtime parameter, so one compiled spec can read another location.
    input_base = cfg.vertex.runtime_parameter('data_root', cfg.data_root)
  example_gen = tfx.components.ImportExampleGen(
      input_base=input_base, input_config=_input_config())
  schema_importer = tfx.components.ImportSchemaGen(
      schema_file=f'{cfg.schema_dir}/schema.pbtxt').with_id('CuratedSchema')
  # With the schema, labels get categorical statistics (for L-infinity drift).
  statistics_gen = tfx.components.StatisticsGen(
      examples=example_gen.outputs['examples'],
      schema=schema_importer.outputs['schema'])
  # Inferred schema, kept so the curated one can be diffed against the data.
  schema_gen = tfx.components.SchemaGen(
      statistics=statistics_gen.outputs['statistics'],
      infer_feature_shape=True).with_id('InferredSchema')
  example_validator = tfx.components.ExampleValidator(
      statistics=statistics_gen.outputs['statistics'],
      schema=schema_importer.outputs['schema'])

  if cfg.vertex is None:
    baseline = tfx.dsl.Resolver(
        strategy_class=data_gate.PreviousAcceptedSpanStrategy,
        examples=example_gen.outputs['examples'],
        statistics=tfx.dsl.Channel(
            type=standard_artifacts.ExampleStatistics,
            producer_component_id=statistics_gen.id, output_key='statistics'),
        accepted=tfx.dsl.Channel(
            type=standard_artifacts.ExampleAnomalies,
            producer_component_id='DataGate', output_key='report'),
    ).with_id('PreviousAcceptedSpan')
  else:
    # KubeflowV2 compiles only the Latest{Artifact,BlessedModel} strategies
    # into Vertex ML Metadata queries (see docs/vertex.md): the baseline is
    # the newest statistics from an earlier run.
    baseline = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestArtifactStrategy,
        statistics=tfx.dsl.Channel(
            type=standard_artifacts.ExampleStatistics,
            producer_component_id=statistics_gen.id, output_key='statistics'),
    ).with_id('PreviousAcceptedSpan')
  gate = data_gate.DataGate(
      examples=example_gen.outputs['examples'],
      statistics=statistics_gen.outputs['statistics'],
      schema=schema_importer.outputs['schema'],
      anomalies=example_validator.outputs['anomalies'],
      baseline_statistics=baseline.outputs['statistics'],
  ).with_id('DataGate')

  transform = tfx.components.Transform(
      examples=example_gen.outputs['examples'],
      schema=schema_importer.outputs['schema'],
      preprocessing_fn=PREPROCESSING_FN,
      splits_config=tfx.proto.SplitsConfig(
          analyze=[features.TRAIN_SPLIT],
          transform=[features.TRAIN_SPLIT, features.EVAL_SPLIT]),
      disable_statistics=True)
  # Bad data must never reach Transform or Trainer.
  transform.add_upstream_node(gate)

  trainer_inputs, base_model_resolver = {}, []
  if cfg.vertex is None:
    # What a retraining run warm-starts from (models/warm_start.py decides
    # whether it does). Not on Vertex: its compiler takes only the Latest*
    # strategies, and the newest blessed model would change after each
    # blessing, so a rerun of a span would never be cached there.
    base_model_resolver = [tfx.dsl.Resolver(
        strategy_class=base_model.BlessedModelOfEarlierSpanStrategy,
        examples=example_gen.outputs['examples'],
        model=tfx.dsl.Channel(type=standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=standard_artifacts.ModelBlessing),
    ).with_id('BaseModel')]
    trainer_inputs['base_model'] = base_model_resolver[0].outputs['model']
  trainer_cls, trainer_config = tfx.components.Trainer, {}
  if cfg.vertex is not None and cfg.vertex.vertex_training:
    # TFX's Vertex Trainer, honouring --api-endpoint (pipeline/vertex_training).
    from pipeline import vertex_training  # pylint: disable=g-import-not-at-top
    trainer_cls = vertex_training.Trainer
    trainer_config = cfg.vertex.trainer_custom_config(cfg.pipeline_name)
  trainer = trainer_cls(
      run_fn=RUN_FN,
      examples=transform.outputs['transformed_examples'],
      transform_graph=transform.outputs['transform_graph'],
      schema=schema_importer.outputs['schema'],
      train_args=tfx.proto.TrainArgs(splits=[features.TRAIN_SPLIT]),
      eval_args=tfx.proto.EvalArgs(splits=[features.EVAL_SPLIT]),
      custom_config={trainer_lib.MODEL_CONFIG_KEY: cfg.model.to_dict(),
                     **trainer_config},
      **trainer_inputs)

  # What `fmnist monitor` compares served traffic with, found through MLMD
  # lineage from the served model (pipeline/reference.py).
  monitoring_reference = reference_component.MonitoringReference(
      examples=example_gen.outputs['examples'],
      model=trainer.outputs['model']).with_id('MonitoringReference')

  model_resolver = tfx.dsl.Resolver(
      strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
      model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
      model_blessing=tfx.dsl.Channel(
          type=tfx.types.standard_artifacts.ModelBlessing),
  ).with_id('LatestBlessedModel')
  evaluator = tfx.components.Evaluator(
      examples=example_gen.outputs['examples'],
      model=trainer.outputs['model'],
      baseline_model=model_resolver.outputs['model'],
      schema=schema_importer.outputs['schema'],
      example_splits=[features.TEST_SPLIT],
      eval_config=evaluation.make_eval_config())
  # The blessing the Pusher and LatestBlessedModel use: value bar + paired
  # test against the baseline on the same test images (docs/compare.md).
  blessing = blessing_lib.Blessing(
      examples=example_gen.outputs['examples'],
      model=trainer.outputs['model'],
      evaluation=evaluator.outputs['evaluation'],
      baseline_model=model_resolver.outputs['model'],
      min_accuracy=cfg.min_accuracy,
      max_accuracy_drop=cfg.max_accuracy_drop,
      alpha=cfg.blessing_alpha).with_id('Blessing')
  pusher = tfx.components.Pusher(
      model=trainer.outputs['model'],
      model_blessing=blessing.outputs['blessing'],
      push_destination=tfx.proto.PushDestination(
          filesystem=tfx.proto.PushDestination.Filesystem(
              base_directory=cfg.serving_dir)),
      custom_executor_spec=executor_spec.ExecutorClassSpec(
          pusher_lib.AtomicPusherExecutor))

  components = [example_gen, statistics_gen, schema_importer, schema_gen,
                example_validator, baseline, gate, transform,
                *base_model_resolver, trainer,
                monitoring_reference, model_resolver, evaluator, blessing,
                pusher]
  registry_config = (cfg.vertex.registry_config()
                     if cfg.vertex is not None else None)
  if registry_config:
    # A new Model Registry version per push (needs the [vertex] extra).
    from pipeline import registry_pusher  # pylint: disable=g-import-not-at-top
    components.append(registry_pusher.RegistryPusher(
        model=trainer.outputs['model'],
        model_blessing=blessing.outputs['blessing'],
        custom_config=registry_pusher.custom_config(registry_config),
    ).with_id('RegistryPusher'))
  return components


def create_pipeline(cfg: configs.PipelineConfig,
                    metadata_connection_config=None) -> tfx.dsl.Pipeline:
  return tfx.dsl.Pipeline(
      pipeline_name=cfg.pipeline_name,
      pipeline_root=cfg.pipeline_root,
      components=create_components(cfg),
      enable_cache=cfg.enable_cache,
      metadata_connection_config=metadata_connection_config,
      beam_pipeline_args=list(cfg.beam_pipeline_args))
