"""The CNN: conv blocks (16 -> 32 -> 128, two convs each) with BatchNorm,
dense 512, softmax over 10 classes; optionally residual (ResNet basic blocks)
with global average pooling, or with its last convs depthwise-separable."""

import dataclasses
import math
import os
from typing import Optional, Tuple

import tensorflow as tf
import tf_keras as keras

from models import features
from models.augmentation import RandomAffine
from models.augmentation import RandomErasing
from models.budget import TimeBudget
from models import runtime
from models.config import ModelConfig


def build_model(cfg: ModelConfig) -> keras.Model:
  """Builds and compiles the classifier.

  Input is the Transform output `image_xf` (784 standardized floats); the output
  is class probabilities, which is what TFMA and serving consume.
  """
  runtime.keras_code_as_written()
  inputs = keras.Input(shape=(features.NUM_PIXELS,),
                       name=features.transformed_name(features.IMAGE_KEY))
  x = keras.layers.Reshape((features.IMAGE_SIZE, features.IMAGE_SIZE, 1))(inputs)
  x = RandomAffine(cfg.rotation_degrees, cfg.shift_fraction, cfg.shear_fraction,
                   cfg.zoom_fraction, cfg.horizontal_flip,
                   probability=cfg.augment_probability, seed=cfg.seed,
                   whole_pixel_shift=cfg.whole_pixel_shift,
                   name='augment')(x)
  if cfg.erasing_probability > 0:
    x = RandomErasing(cfg.erasing_probability, seed=cfg.seed, name='erase')(x)
  conv = 0  # index of the next 3x3 conv, for cfg.separable
  for filters in cfg.conv_filters:
    if cfg.residual:
      for _ in range(cfg.convs_per_block // 2):
        x = _basic_block(x, filters, cfg.batchnorm_momentum, cfg.activation,
                         (cfg.separable(conv), cfg.separable(conv + 1)))
        conv += 2
    else:
      for _ in range(cfg.convs_per_block):
        x = _conv_bn(x, filters, cfg.batchnorm_momentum, cfg.separable(conv))
        x = keras.layers.Activation(cfg.activation)(x)
        conv += 1
    if cfg.squeeze_excitation:
      x = _squeeze_excitation(x, cfg.squeeze_excitation)
    x = keras.layers.MaxPooling2D(padding=cfg.pool_padding)(x)
    x = keras.layers.Dropout(cfg.conv_dropout)(x)
  if cfg.global_pool:
    x = keras.layers.GlobalAveragePooling2D()(x)
  else:
    x = keras.layers.Flatten()(x)
  x = keras.layers.Dense(cfg.dense_units, use_bias=False)(x)
  x = keras.layers.BatchNormalization(momentum=cfg.batchnorm_momentum)(x)
  x = keras.layers.Activation(cfg.activation)(x)
  x = keras.layers.Dropout(cfg.dense_dropout)(x)
  outputs = keras.layers.Dense(features.NUM_CLASSES, activation='softmax',
                               name='probabilities')(x)
  model = keras.Model(inputs, outputs, name=cfg.run_name())
  compile_model(model, cfg)
  return model


def compile_model(model: keras.Model, cfg: ModelConfig) -> None:
  """(Re)compiles `model` with a fresh optimizer, loss and metric."""
  model.compile(
      optimizer=_optimizer(cfg),
      loss=_loss(cfg.label_smoothing),
      metrics=['sparse_categorical_accuracy'])


def load_weights(model: keras.Model, cfg: ModelConfig,
                 saved_model_dir: str) -> None:
  """Sets `model`'s weights to those of an exported model of the same
  architecture (its SavedModel's variables), then recompiles it: Keras would
  also restore the exported optimizer's state into the next optimizer it
  builds, and a warm start begins its own schedule with a fresh one.

  Raises ValueError if the export's variables do not fit `model` (another
  shape or another layer); `model` may then hold some of them: discard it.
  """
  status = model.load_weights(
      os.path.join(saved_model_dir, 'variables', 'variables'))
  # The export also holds the Transform layer and signatures: not ours.
  status.expect_partial()
  try:
    status.assert_existing_objects_matched()
  except AssertionError as e:
    raise ValueError(str(e)) from e
  compile_model(model, cfg)


def _conv_bn(x, filters: int, momentum: float, separable: bool = False,
             size: int = 3):
  if separable:
    x = keras.layers.SeparableConv2D(filters, size, padding='same',
                                     use_bias=False)(x)
  else:
    x = keras.layers.Conv2D(filters, size, padding='same', use_bias=False)(x)
  return keras.layers.BatchNormalization(momentum=momentum)(x)


def _squeeze_excitation(x, reduction: int):
  """Scales each channel of `x` by a weight in (0, 1) computed from the
  channel means of the whole map (Hu et al., "Squeeze-and-Excitation
  Networks"): what the block found anywhere in the image decides which of
  its filters count for this image."""
  channels = x.shape[-1]
  weights = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
  weights = keras.layers.Dense(max(1, channels // reduction),
                               activation='relu')(weights)
  weights = keras.layers.Dense(channels, activation='sigmoid')(weights)
  return keras.layers.Multiply()([x, weights])


def _basic_block(x, filters: int, momentum: float, activation: str,
                 separable: Tuple[bool, bool]):
  """conv-BN-ReLU-conv-BN, plus the input (projected by a 1x1 conv + BN where
  the width changes), then ReLU: He et al.'s basic block, without striding
  (the blocks' max pooling downsamples, as in the plain stack); `activation`
  in place of ReLU."""
  shortcut = x
  if x.shape[-1] != filters:
    shortcut = _conv_bn(x, filters, momentum, size=1)
  x = keras.layers.Activation(activation)(
      _conv_bn(x, filters, momentum, separable[0]))
  x = _conv_bn(x, filters, momentum, separable[1])
  return keras.layers.Activation(activation)(keras.layers.Add()([x, shortcut]))


def _optimizer(cfg: ModelConfig) -> keras.optimizers.Optimizer:
  """Adam (the default), or SGD with Nesterov momentum, the usual
  alternative for CNNs (measured: no gain here, README "The model")."""
  common = dict(learning_rate=cfg.learning_rate, clipnorm=cfg.clipnorm,
                weight_decay=cfg.weight_decay)
  if cfg.optimizer == 'sgd':
    return keras.optimizers.SGD(momentum=cfg.momentum, nesterov=True, **common)
  return keras.optimizers.Adam(**common)


def _loss(label_smoothing: float):
  """Sparse cross-entropy, with labels smoothed if asked (Keras' sparse loss
  has no smoothing, so integer labels are one-hot encoded first)."""
  if not label_smoothing:
    return 'sparse_categorical_crossentropy'

  def smoothed_crossentropy(labels, probabilities):
    labels = tf.one_hot(tf.cast(tf.reshape(labels, [-1]), tf.int32),
                        features.NUM_CLASSES)
    return keras.losses.categorical_crossentropy(
        labels, probabilities, label_smoothing=label_smoothing)
  return smoothed_crossentropy


def cosine_learning_rate(cfg: ModelConfig, epoch: int) -> float:
  """The 'cosine' schedule's LR for a 0-based epoch: warm-up, then decay."""
  if epoch < cfg.warmup_epochs:
    return cfg.learning_rate * (epoch + 1) / (cfg.warmup_epochs + 1)
  span = max(1, cfg.epochs - cfg.warmup_epochs - 1)
  progress = min(1.0, (epoch - cfg.warmup_epochs) / span)
  return cfg.min_learning_rate + 0.5 * (
      cfg.learning_rate - cfg.min_learning_rate) * (1 + math.cos(
          math.pi * progress))


def training_callbacks(cfg: ModelConfig, log_dir: str,
                       budget: Optional[TimeBudget] = None):
  """The LR schedule, TensorBoard, with 'plateau' early stopping on
  validation loss, and the time budget if there is one.

  A planned (cosine) schedule trains to its last epoch, the one its LR has
  annealed for, as benchmarks/recipes.py measured it on `eval`. Early stopping
  there cut a run short and restored a mid-schedule epoch: validation loss
  bottoms out before accuracy does (seed 7: best loss at epoch 20 of 28,
  stopped at 26, 0.9411 on test; README "Results"). Under a budget the last
  epoch is the one the budget plans (models/budget.py), and the schedule
  anneals to it.
  """
  callbacks = [keras.callbacks.TensorBoard(log_dir=log_dir,
                                           update_freq='epoch')]
  if budget is not None:
    callbacks.append(budget)
  if cfg.lr_schedule == 'cosine':
    def learning_rate(epoch, current):
      if budget is None:
        return cosine_learning_rate(cfg, epoch)
      planned = cosine_learning_rate(
          dataclasses.replace(cfg, epochs=budget.planned_epochs), epoch)
      # A plan that grew must not raise the rate again past the warm-up.
      return planned if epoch <= cfg.warmup_epochs else min(planned, current)
    return [keras.callbacks.LearningRateScheduler(learning_rate)] + callbacks
  return [
      keras.callbacks.ReduceLROnPlateau(
          monitor='val_loss', factor=cfg.lr_reduce_factor,
          patience=cfg.lr_reduce_patience, min_lr=cfg.min_learning_rate,
          verbose=1),
      keras.callbacks.EarlyStopping(
          monitor='val_loss', patience=cfg.early_stopping_patience,
          restore_best_weights=True, verbose=1),
  ] + callbacks
