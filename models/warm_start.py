"""Whether a training run starts from the last blessed model's weights.

With `warm_start_epochs` > 0 (off by default: measured, it halved a
retraining run's time but ended 0.45 points of test accuracy below a run
from scratch; README "Retraining"), a retraining run on a new span (the
pipeline resolves its `base_model`: pipeline/base_model.py) starts from the
weights of the model serving before it and trains `warm_start_epochs` epochs
instead of `epochs`, when that model was trained with this same recipe.
Anything else trains from scratch, and says why: no base model (the first
span, or a rerun of one), warm starts off, a base exported before its recipe
was recorded, another recipe (a changed `--model-param` means "train this",
not "fine-tune that"), or weights that do not fit. With
`warm_start_shrink` / `warm_start_perturb` the base's weights are first moved
towards a fresh initialization (shrink and perturb; off by default, as it
did not close the gap on `eval`: benchmarks/warm_recipes.py).

Each export records its recipe in `assets.extra/model_config.json` (beside
the SavedModel, where TF Serving looks for extra files and ignores others),
so the decision needs nothing but the base model's directory: on Vertex too.
"""

import dataclasses
import json
import os
from typing import Any, Dict, Optional

import tensorflow as tf
import tf_keras as keras

from models import model as model_lib
from models.config import ModelConfig

CONFIG_FILE = os.path.join('assets.extra', 'model_config.json')
# In the Trainer's run dir: how this run started (read by the run summary).
RECORD_FILE = 'warm_start.json'


@dataclasses.dataclass(frozen=True)
class Start:
  """The model to fit, the knobs to fit it with, and why."""
  model: keras.Model
  cfg: ModelConfig
  base_model: Optional[str]  # the export whose weights `model` starts from
  reason: str

  @property
  def warm(self) -> bool:
    return self.base_model is not None

  def record(self) -> Dict[str, Any]:
    return {'warm_started': self.warm, 'base_model': self.base_model,
            'epochs': self.cfg.epochs,
            'learning_rate': self.cfg.learning_rate,
            'shrink': self.cfg.warm_start_shrink,
            'perturb': self.cfg.warm_start_perturb, 'reason': self.reason}


def shrink_perturb(model: keras.Model, cfg: ModelConfig) -> bool:
  """Moves a warm-started model's trainable weights towards a fresh
  initialization: w <- shrink * w + perturb * w_fresh (Ash & Adams 2020:
  training then generalizes like a run from scratch more than a plain
  fine-tune does). BatchNorm's moving statistics stay the base's; training
  re-estimates them. Returns whether anything changed."""
  if cfg.warm_start_shrink == 1 and not cfg.warm_start_perturb:
    return False
  fresh = model_lib.build_model(cfg)
  for weight, init in zip(model.trainable_weights, fresh.trainable_weights):
    weight.assign(cfg.warm_start_shrink * weight
                  + cfg.warm_start_perturb * init)
  return True


def write_config(serving_dir: str, cfg: ModelConfig) -> None:
  """Records the recipe an export was trained with, for the next run."""
  path = os.path.join(serving_dir, CONFIG_FILE)
  tf.io.gfile.makedirs(os.path.dirname(path))
  with tf.io.gfile.GFile(path, 'w') as f:
    json.dump(cfg.to_dict(), f, indent=1)


def _base_recipe(base_model: str) -> Optional[Dict[str, Any]]:
  """The recipe recorded with an export, None if it has none or it no longer
  reads as a ModelConfig (an export from an older version of the code)."""
  path = os.path.join(base_model, CONFIG_FILE)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    try:
      return ModelConfig.from_dict(json.load(f)).recipe()
    except (ValueError, TypeError):
      return None


def start(cfg: ModelConfig, base_model: Optional[str]) -> Start:
  """A freshly initialized model with `cfg`, or the base model's weights
  with `cfg.warm_started()` (module doc says when)."""

  def cold(reason: str) -> Start:
    return Start(model_lib.build_model(cfg), cfg, None,
                 f'trained from scratch: {reason}')

  if not base_model:
    return cold('no blessed model trained on an earlier span')
  if not cfg.warm_start_epochs:
    return cold('warm starts are off (warm_start_epochs is 0)')
  recipe = _base_recipe(base_model)
  if recipe is None:
    return cold(f'{base_model} has no readable {CONFIG_FILE} (exported '
                'before recipes were recorded)')
  changed = sorted(k for k, v in cfg.recipe().items() if recipe.get(k) != v)
  if changed:
    return cold(f'the last blessed model was trained with another recipe '
                f'({", ".join(changed)} differ)')
  warm = cfg.warm_started()
  model = model_lib.build_model(warm)
  try:
    model_lib.load_weights(model, warm, base_model)
  except (ValueError, tf.errors.OpError) as e:
    return cold(f'the weights of {base_model} do not load: {e}')
  moved = ''
  if shrink_perturb(model, warm):
    moved = (f', its weights shrunk by {warm.warm_start_shrink:g} and '
             f'perturbed by {warm.warm_start_perturb:g} of a fresh '
             'initialization')
  return Start(model, warm, base_model,
               f'warm-started from {base_model}{moved}: {warm.epochs} epochs, '
               f'peak learning rate {warm.learning_rate:g}')
