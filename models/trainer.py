"""The Trainer's `run_fn`: reads Transform output, fits the CNN, exports it.

Kept thin so `build_model` and `export` can be tested without TFX.
"""

import json
import os
from typing import Dict, Tuple

from absl import logging
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from models import budget as budget_lib
from models import features
from models import model as model_lib
from models import signatures
from models import temperature
from models import tracking
from models import warm_start
from models.config import ModelConfig

MODEL_CONFIG_KEY = 'model'
HISTORY_FILE = 'history.json'
TEMPERATURE_FILE = 'temperature.json'


def without_autotune(dataset: tf.data.Dataset) -> tf.data.Dataset:
  """The dataset with tf.data's autotuning off.

  Why: in TF 2.16 deleting an autotuned iterator waits for the autotuning
  thread to finish its current sleep (`Model::OptimizeLoop`, a period that
  grows to a minute). Keras deletes the training iterator when `fit`
  returns, so the Trainer sat idle for 28-35 s after its last epoch in about
  half of the runs (seen with gdb; benchmarks/trainer_input.py). Nothing
  here needs tuning: two cores, batches sliced from memory or parsed
  with a fixed parallelism.
  """
  options = tf.data.Options()
  options.autotune.enabled = False
  return dataset.with_options(options)


def input_fn(file_pattern, data_accessor: tfx.components.DataAccessor,
             tf_transform_output: tft.TFTransformOutput, cfg: ModelConfig,
             shuffle: bool) -> tf.data.Dataset:
  """One pass over the transformed examples as (features, label) batches."""
  return without_autotune(data_accessor.tf_dataset_factory(
      file_pattern,
      tfxio.TensorFlowDatasetOptions(
          batch_size=cfg.batch_size,
          shuffle=shuffle,
          shuffle_buffer_size=cfg.shuffle_buffer,
          shuffle_seed=cfg.seed,
          num_epochs=1,
          label_key=features.transformed_name(features.LABEL_KEY)),
      tf_transform_output.transformed_metadata.schema).prefetch(2))


def read_split(file_pattern, data_accessor: tfx.components.DataAccessor,
               tf_transform_output: tft.TFTransformOutput, cfg: ModelConfig
               ) -> Tuple[Dict[str, np.ndarray], np.ndarray]:
  """Every transformed example of a split, in file order, as arrays:
  ({image_xf: [N, 784]}, labels [N])."""
  parts: Dict[str, list] = {}
  labels = []
  for x, y in input_fn(file_pattern, data_accessor, tf_transform_output, cfg,
                       shuffle=False):
    for key, value in x.items():
      parts.setdefault(key, []).append(value.numpy())
    labels.append(y.numpy())
  if not labels:
    raise ValueError(f'no examples in {file_pattern}')
  return ({key: np.concatenate(values) for key, values in parts.items()},
          np.concatenate(labels))


def in_memory_dataset(arrays: Tuple[Dict[str, np.ndarray], np.ndarray],
                      cfg: ModelConfig, shuffle: bool) -> tf.data.Dataset:
  """Batches of `read_split`'s arrays; with `shuffle`, a new order of the
  whole split every epoch (only the indices are shuffled)."""
  x, y = arrays
  x = {key: tf.constant(value) for key, value in x.items()}
  y = tf.constant(y)
  order = tf.data.Dataset.range(len(y))
  if shuffle:
    order = order.shuffle(len(y), seed=cfg.seed, reshuffle_each_iteration=True)
  return without_autotune(order.batch(cfg.batch_size).map(
      lambda i: ({key: tf.gather(value, i) for key, value in x.items()},
                 tf.gather(y, i))).prefetch(2))


def served_probabilities(model, images: np.ndarray, cfg: ModelConfig,
                         batch_size: int = 512) -> np.ndarray:
  """[N, 784] transformed images -> what the exported signatures would
  answer before their temperature (the mean over the TTA views)."""
  return np.concatenate([
      signatures.averaged_probabilities(
          model, tf.constant(images[i:i + batch_size]), cfg.flip_tta,
          cfg.shift_tta).numpy()
      for i in range(0, len(images), batch_size)])


def _write_json(run_dir: str, name: str, value) -> None:
  """One of the JSON files the run summary reads from the run dir."""
  tf.io.gfile.makedirs(run_dir)
  with tf.io.gfile.GFile(os.path.join(run_dir, name), 'w') as f:
    json.dump(value, f, indent=1)


def fit_temperature(model, eval_arrays, cfg: ModelConfig, run_dir: str
                    ) -> float:
  """Fits the served temperature on `eval` and records the fit in
  `run_dir/temperature.json`."""
  x, y = eval_arrays
  probabilities = served_probabilities(
      model, x[features.transformed_name(features.IMAGE_KEY)], cfg)
  fit = temperature.summary(probabilities, y, temperature.fit(probabilities, y))
  logging.info('%s', temperature.describe(fit))
  _write_json(run_dir, TEMPERATURE_FILE, fit)
  return fit['temperature']


def run_fn(fn_args: tfx.components.FnArgs) -> None:
  cfg = ModelConfig.from_dict(
      (fn_args.custom_config or {}).get(MODEL_CONFIG_KEY, {}))
  logging.info('Training %s with %s', cfg.run_name(), json.dumps(cfg.to_dict()))
  keras.utils.set_random_seed(cfg.seed)
  tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
  if cfg.in_memory:
    train_arrays = read_split(fn_args.train_files, fn_args.data_accessor,
                              tf_transform_output, cfg)
    eval_arrays = read_split(fn_args.eval_files, fn_args.data_accessor,
                             tf_transform_output, cfg)
    logging.info('Read %d training and %d eval examples into memory',
                 len(train_arrays[1]), len(eval_arrays[1]))
    train = in_memory_dataset(train_arrays, cfg, shuffle=True)
    val = in_memory_dataset(eval_arrays, cfg, shuffle=False)
  else:
    train = input_fn(fn_args.train_files, fn_args.data_accessor,
                     tf_transform_output, cfg, shuffle=True)
    val = input_fn(fn_args.eval_files, fn_args.data_accessor,
                   tf_transform_output, cfg, shuffle=False)

  start = warm_start.start(cfg, fn_args.base_model)
  logging.info('%s', start.reason)
  model = start.model
  model.summary(print_fn=logging.info)
  budget = (budget_lib.TimeBudget(cfg.train_minutes, start.cfg.epochs)
            if cfg.train_minutes else None)
  history = model.fit(
      train, validation_data=val, epochs=start.cfg.epochs, verbose=2,
      callbacks=model_lib.training_callbacks(
          start.cfg, fn_args.model_run_dir, budget)
      + tracking.callbacks(fn_args.custom_config, cfg, val))
  _write_json(fn_args.model_run_dir, warm_start.RECORD_FILE, start.record())
  if budget is not None:
    record = budget.record()
    logging.info('%s', record['reason'])
    _write_json(fn_args.model_run_dir, budget_lib.RECORD_FILE, record)
  # Per-epoch curves for the report (TensorBoard has them too).
  _write_json(fn_args.model_run_dir, HISTORY_FILE,
              {k: [float(v) for v in vs] for k, vs in history.history.items()})
  t = 1.0
  if cfg.temperature_scaling:
    t = fit_temperature(
        model, eval_arrays if cfg.in_memory else read_split(
            fn_args.eval_files, fn_args.data_accessor, tf_transform_output,
            cfg),
        cfg, fn_args.model_run_dir)
  signatures.export(model, tf_transform_output, fn_args.serving_model_dir,
                    cfg.flip_tta, cfg.shift_tta, t)
  # The recipe, not start.cfg: what the next run compares its own with.
  warm_start.write_config(fn_args.serving_model_dir, cfg)
  logging.info('Exported %s to %s', cfg.run_name(), fn_args.serving_model_dir)
