"""Which model a retraining run warm-starts from: the Trainer's `base_model`.

The newest blessed model trained on an older span than this run's. Not just
the newest blessed model (LatestBlessedModelStrategy): a rerun of the same
span would then see a new base model after every blessing, so the Trainer
would never be cached and each rerun would fine-tune again on data it has
already seen. Keyed on the span, a rerun resolves what the first run of that
span resolved (nothing, for span 1), and stays cached; a new span resolves
the model serving before it.

Whether the Trainer then uses the weights (same recipe, same architecture)
is its own decision (models/warm_start.py).
"""

from tfx.dsl.components.common import resolver

from pipeline import data_gate
from pipeline import lineage


class BlessedModelOfEarlierSpanStrategy(resolver.ResolverStrategy):
  """Resolves the newest blessed Model trained on a span older than this one.

  Inputs: `examples` (this run's ExampleGen output), `model` (every Model of
  the pipeline) and `model_blessing` (every ModelBlessing; a model counts as
  blessed when one with `blessed` = 1 names it as `current_model_id`). The
  span a model was trained on comes from lineage (Trainer <- Transform <-
  ExampleGen), which is why this strategy reads the store.
  """

  def resolve_artifacts(self, store, input_dict):
    current = max((data_gate.span_of(a) for a in input_dict['examples']),
                  default=0)
    blessed_ids = {
        b.get_int_custom_property('current_model_id')
        for b in input_dict.get('model_blessing', [])
        if b.has_custom_property('blessed') and
        b.get_int_custom_property('blessed') == 1 and
        b.has_custom_property('current_model_id')}
    walk = lineage.Lineage(store)
    older = []
    for model in input_dict.get('model', []):
      if model.id not in blessed_ids:
        continue
      examples = walk.trained_on(model.mlmd_artifact)
      if examples is not None and (
          lineage.property_of(examples, 'span') or 0) < current:
        older.append(model)
    return {
        'examples': input_dict['examples'],
        'model': [max(older, key=lambda m: m.id)] if older else [],
        'model_blessing': [],
    }

