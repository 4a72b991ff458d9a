"""The CNN: conv 32 -> 64 -> 128 with BatchNorm, dense 512, softmax over 10 classes."""

import tf_keras as keras

from models import features
from models.augmentation import RandomAffine
from models.config import ModelConfig


def build_model(cfg: ModelConfig) -> keras.Model:
  """Builds and compiles the classifier.

  Input is the Transform output `image_xf` (784 standardized floats); the output
  is class probabilities, which is what TFMA and serving consume.
  """
  inputs = keras.Input(shape=(features.NUM_PIXELS,),
                       name=features.transformed_name(features.IMAGE_KEY))
  x = keras.layers.Reshape((features.IMAGE_SIZE, features.IMAGE_SIZE, 1))(inputs)
  x = RandomAffine(cfg.rotation_degrees, cfg.shift_fraction, cfg.shear_fraction,
                   cfg.zoom_fraction, cfg.horizontal_flip,
                   probability=cfg.augment_probability, seed=cfg.seed,
                   name='augment')(x)
  for filters in cfg.conv_filters:
    for _ in range(cfg.convs_per_block):
      x = keras.layers.Conv2D(filters, 3, padding='same', use_bias=False)(x)
      x = keras.layers.BatchNormalization()(x)
      x = keras.layers.Activation('relu')(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Dropout(cfg.conv_dropout)(x)
  x = keras.layers.Flatten()(x)
  x = keras.layers.Dense(cfg.dense_units, use_bias=False)(x)
  x = keras.layers.BatchNormalization()(x)
  x = keras.layers.Activation('relu')(x)
  x = keras.layers.Dropout(cfg.dense_dropout)(x)
  outputs = keras.layers.Dense(features.NUM_CLASSES, activation='softmax',
                               name='probabilities')(x)
  model = keras.Model(inputs, outputs, name=cfg.run_name())
  model.compile(
      optimizer=keras.optimizers.Adam(
          learning_rate=cfg.learning_rate, clipnorm=cfg.clipnorm,
          weight_decay=cfg.weight_decay),
      loss='sparse_categorical_crossentropy',
      metrics=['sparse_categorical_accuracy'])
  return model


def training_callbacks(cfg: ModelConfig, log_dir: str):
  """LR reduction on plateau, early stopping on validation loss, TensorBoard."""
  return [
      keras.callbacks.ReduceLROnPlateau(
          monitor='val_loss', factor=cfg.lr_reduce_factor,
          patience=cfg.lr_reduce_patience, min_lr=cfg.min_learning_rate,
          verbose=1),
      keras.callbacks.EarlyStopping(
          monitor='val_loss', patience=cfg.early_stopping_patience,
          restore_best_weights=True, verbose=1),
      keras.callbacks.TensorBoard(log_dir=log_dir, update_freq='epoch'),
  ]
