"""Training recipes side by side on the eval split (issue 10's ablation).

  .venv/bin/python benchmarks/recipes.py [--epochs 8] [--model-param K=V ...]

Trains each recipe with Keras on the span's own train/eval split of the real
training set (the same seeded hold-out `fmnist ingest` writes; pixels scaled
and z-scored as Transform does), in memory, one after another on the same
machine, and reports validation accuracy (best and last epoch; and of the
final model with flip TTA, and with flip x one-pixel shifts, 10 views),
seconds per epoch and images/s. Recipes are chosen here on `eval`, never on
`test`; the test accuracy of the chosen default comes from the pipeline
(benchmarks/full_run.py). Results: benchmarks/results/recipes.json.
"""

import argparse
import json
import os
import time

import numpy as np

import hardware  # benchmarks/hardware.py
from fmnist import options
from models import features
from models import config
from models.config import ModelConfig
from pipeline import configs
from pipeline import ingest

# Every recipe starts from the seeds' recipe (models.config.SEEDS; the
# architecture and epochs come from the defaults / --model-param / --epochs).
SEEDS = {k: v for k, v in config.SEEDS.items()
         if k not in {*config.SEEDS_ARCHITECTURE, 'epochs', 'flip_tta',
                       'shift_tta'}}
LIGHT = dict(SEEDS, rotation_degrees=0.0, shear_fraction=0.0,
             zoom_fraction=0.0, shift_fraction=0.1, horizontal_flip=True,
             augment_probability=1.0)
RECIPES = {
    'seeds: affine p=0.3, LR on plateau': SEEDS,
    'shift+flip, cosine': dict(LIGHT, lr_schedule='cosine'),
    'shift+flip, cosine, erasing 0.5': dict(LIGHT, lr_schedule='cosine',
                                            erasing_probability=0.5),
    'seeds, less dropout (0.1/0.3)': dict(SEEDS, conv_dropout=0.1,
                                          dense_dropout=0.3),
    # The defaults since this comparison.
    'shift+flip on half, cosine, less dropout': dict(
        LIGHT, augment_probability=0.5, lr_schedule='cosine',
        conv_dropout=0.1, dense_dropout=0.3),
    'shift+flip on half, cosine, less dropout, weight decay 0.05': dict(
        LIGHT, augment_probability=0.5, lr_schedule='cosine',
        conv_dropout=0.1, dense_dropout=0.3, weight_decay=0.05),
    # Changes to the defaults (ModelConfig), measured side by side with them.
    'default': {},
    'default, whole-pixel shifts': dict(whole_pixel_shift=True),
    'default, whole-pixel shifts on every image': dict(
        whole_pixel_shift=True, augment_probability=1.0),
    'default, label smoothing 0.1': dict(label_smoothing=0.1),
    'default, the earlier dropout 0.1/0.3': dict(conv_dropout=0.1,
                                                 dense_dropout=0.3),
    'default, wider 32-96-192': dict(conv_filters=[32, 96, 192]),
    'default, decoupled weight decay 0.05': dict(weight_decay=0.05),
    'default, SGD (Nesterov 0.9, lr 0.05, weight decay 5e-3)': dict(
        optimizer='sgd', learning_rate=0.05, weight_decay=5e-3),
    'default, random erasing 0.25': dict(erasing_probability=0.25),
    # Residual nets (benchmarks/architectures.py has their step times).
    'default, residual': dict(residual=True),
    'default, residual 12-24-64, four convs per block': dict(
        residual=True, conv_filters=[12, 24, 64], convs_per_block=4),
    'default, residual 16-32-64, four convs per block, global pool': dict(
        residual=True, conv_filters=[16, 32, 64], convs_per_block=4,
        global_pool=True),
}


# Every recipe since the first was compared on this `eval` split (6,000
# images, the pipeline's split until 2026-12-06), so it stays fixed here.
EVAL_FRACTION = 0.1


def _data():
  x, y = ingest.read_idx_pair(configs.DEFAULT_SOURCE_DIR, ingest.TRAIN_FILES)
  defaults = ingest.IngestConfig(source_dir='', output_dir='')
  train, held = ingest.holdout(len(x), EVAL_FRACTION, defaults.seed)
  x = x.reshape(len(x), features.NUM_PIXELS).astype(np.float32) / 255.0
  mean, std = x[train].mean(), x[train].std()
  x = (x - mean) / std
  return (x[train], y[train]), (x[held], y[held])


def _shifted(x: np.ndarray, dy: int, dx: int, flip: bool) -> np.ndarray:
  """Flat images moved by whole pixels (edges repeated), optionally mirrored."""
  size = features.IMAGE_SIZE
  images = x.reshape(-1, size, size)
  if flip:
    images = images[:, :, ::-1]
  padded = np.pad(images, ((0, 0), (1, 1), (1, 1)), mode='edge')
  return padded[:, 1 + dy:1 + dy + size, 1 + dx:1 + dx + size].reshape(
      len(x), -1)


# The four diagonal one-pixel moves, measured here beside the served ones.
_DIAGONALS = ((1, 1), (1, -1), (-1, 1), (-1, -1))


def tta_accuracies(model, x: np.ndarray, y: np.ndarray) -> dict:
  """Accuracy of the trained model alone, with flip TTA, with flip x
  one-pixel shifts (10 views, what the exported signatures serve) and with
  the diagonal moves added (18 views: would it pay to serve more views?)."""
  # Heavy (TensorFlow Transform), so imported where needed, as main does.
  from models import signatures  # pylint: disable=g-import-not-at-top
  cross = ((0, 0),) + signatures.SHIFTS  # the image and what shift_tta serves
  views = {}
  for flip in (False, True):
    for dy, dx in cross + _DIAGONALS:
      views[flip, dy, dx] = model.predict(_shifted(x, dy, dx, flip),
                                          batch_size=512, verbose=0)
  def accuracy(keys):
    return float(np.mean(np.mean([views[k] for k in keys], axis=0).argmax(1)
                         == y))
  return {'plain': accuracy([(False, 0, 0)]),
          'flip_tta': accuracy([(False, 0, 0), (True, 0, 0)]),
          'flip_shift_tta': accuracy(
              [(f, dy, dx) for f in (False, True) for dy, dx in cross]),
          'flip_shift_diagonal_tta': accuracy(list(views))}


def distillation_targets(teacher_probabilities: np.ndarray, y: np.ndarray,
                         weight: float, label_smoothing: float) -> np.ndarray:
  """Soft training targets (a prototype for `--distill-from`): `weight` of
  the teacher's served probabilities of each (un-augmented) training image
  and the rest the label, smoothed as the default smooths it. Shifts and
  flips keep an image's class, so the targets stay right for the augmented
  images the student sees."""
  one_hot = np.eye(features.NUM_CLASSES, dtype=np.float32)[y]
  smoothed = one_hot * (1 - label_smoothing) + (
      label_smoothing / features.NUM_CLASSES)
  return (weight * teacher_probabilities + (1 - weight) * smoothed).astype(
      np.float32)


def mixup_dataset(x: np.ndarray, y: np.ndarray, batch_size: int,
                  alpha: float, seed: int):
  """Shuffled batches mixed as in mixup (Zhang et al. 2018): one weight
  lam ~ Beta(alpha, alpha) per batch, each image and its one-hot label
  blended with the batch's reversed order (a prototype: not a ModelConfig
  knob until it pays on `eval`)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  def mix(images, labels):
    a = tf.random.gamma([], alpha)
    lam = a / (a + tf.random.gamma([], alpha))
    return (lam * images + (1 - lam) * tf.reverse(images, [0]),
            lam * labels + (1 - lam) * tf.reverse(labels, [0]))
  one_hot = np.eye(features.NUM_CLASSES, dtype=np.float32)[y]
  return (tf.data.Dataset.from_tensor_slices((x, one_hot))
          .shuffle(len(x), seed=seed).batch(batch_size)
          .map(mix).prefetch(2))


def _clean_training(model) -> None:
  """Turns the model's training-time augmentation off (a prototype for
  `--clean-final-epochs`: does fine-tuning on the images as served, after
  training on shifted and mirrored ones, pay on `eval`?)."""
  for layer in model.layers:
    if layer.name == 'augment':
      layer.probability, layer.horizontal_flip = 0.0, False
    elif layer.name == 'erase':
      layer.probability = 0.0
  model.train_function = None


def el2n_scores(model, x: np.ndarray, y: np.ndarray) -> np.ndarray:
  """Each training image's EL2N score (Paul et al. 2021, "Deep Learning on a
  Data Diet"): the L2 norm of the model's probabilities minus the one-hot
  label, on the image as served (no augmentation). A few epochs into
  training it ranks the images by how much they still have to teach: the
  lowest are the ones the model already gets right with confidence, whose
  gradients are near zero (a prototype for `--prune-after`)."""
  probabilities = model.predict(x, batch_size=512, verbose=0)
  return np.linalg.norm(
      probabilities - np.eye(features.NUM_CLASSES)[y], axis=1)


def hardest(scores: np.ndarray, labels: np.ndarray, keep: float
            ) -> np.ndarray:
  """Sorted indices of the `keep` share of each class's images with the
  highest scores. Per class, so the kept images have the classes' shares of
  the full set: kept across classes, the easy classes (Trouser, Bag, Ankle
  boot) nearly vanish and the model's prior shifts towards the hard ones
  (one epoch on such a set took `eval` accuracy from 0.87 to 0.74)."""
  kept = []
  for label in np.unique(labels):
    members = np.flatnonzero(labels == label)
    n = int(round(len(members) * keep))
    order = np.argsort(scores[members], kind='stable')
    kept.append(members[order[len(members) - n:]])
  return np.sort(np.concatenate(kept))


def cropped(model, size: int):
  """The same network on size x size inputs: its very layers (so the same
  weights, BatchNorm statistics and, compiled with its optimizer, the same
  optimizer state) applied to a smaller image. With 'valid' pooling, 24 x 24
  ends in the same 3 x 3 map as 28 x 28 (24-12-6-3 against 28-14-7-3), so the
  dense head fits both, and a conv costs (24/28)^2 = 0.73 of its FLOPs: a
  prototype of progressive resizing for `--crop-epochs` (plain conv stacks
  only: the layers are re-applied as a chain)."""
  import tf_keras as keras  # pylint: disable=g-import-not-at-top
  inputs = keras.Input(shape=(size * size,))
  x = keras.layers.Reshape((size, size, 1))(inputs)
  for layer in model.layers[2:]:  # after the input and its reshape
    x = layer(x)
  small = keras.Model(inputs, x)
  small.compile(optimizer=model.optimizer, loss=model.loss,
                metrics=['sparse_categorical_accuracy'])
  return small


def center_crops(x: np.ndarray, size: int) -> np.ndarray:
  """Flat 28 x 28 images -> their central size x size windows, flat."""
  full = features.IMAGE_SIZE
  top = (full - size) // 2
  return x.reshape(-1, full, full)[:, top:top + size, top:top + size].reshape(
      len(x), size * size)


def random_crops(x: np.ndarray, y: np.ndarray, size: int, batch_size: int,
                 seed: int):
  """Shuffled batches of a random size x size window of each flat 28 x 28
  image, a new window for every image in every epoch (random-crop
  augmentation at a lower resolution)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  full = features.IMAGE_SIZE

  def crop(images, labels):
    n = tf.shape(images)[0]
    images = tf.reshape(images, [n, full, full])
    corners = tf.random.uniform([n, 2], 0, full - size + 1, dtype=tf.int32)
    window = tf.range(size)
    images = tf.gather(images, corners[:, :1] + window, axis=1, batch_dims=1)
    images = tf.gather(images, corners[:, 1:] + window, axis=2, batch_dims=1)
    return tf.reshape(images, [n, size * size]), labels
  return (tf.data.Dataset.from_tensor_slices((x, y))
          .shuffle(len(x), seed=seed).batch(batch_size).map(crop).prefetch(2))


def fit_callbacks(cfg: ModelConfig) -> list:
  """The Trainer's callbacks (its LR schedule) without TensorBoard and
  early stopping: every recipe here trains all its epochs."""
  import tf_keras as keras  # pylint: disable=g-import-not-at-top
  from models import model as model_lib  # pylint: disable=g-import-not-at-top
  return [c for c in model_lib.training_callbacks(cfg, '/tmp/recipes-tb')
          if not isinstance(c, (keras.callbacks.TensorBoard,
                                keras.callbacks.EarlyStopping))]


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--epochs', type=int, default=8)
  p.add_argument('--model-param', action='append', default=[],
                 help='KEY=JSON applied to every recipe, e.g. convs_per_block=1')
  p.add_argument('--only', default=None,
                 help='run only recipes containing this (or exactly this name)')
  p.add_argument('--train-fraction', type=float, default=1.0,
                 help='train on a seeded random share of the train split '
                      '(a learning curve: what would more data buy?)')
  p.add_argument('--mixup', type=float, default=0.0,
                 help='train with mixup, Beta(ALPHA, ALPHA) weights '
                      '(0: off; a prototype measured on eval)')
  p.add_argument('--clean-final-epochs', type=int, default=0,
                 help='train the last K epochs without augmentation (a '
                      'prototype measured on eval: 0 is off)')
  p.add_argument('--prune-after', type=int, default=0,
                 help='after K epochs on every image, train the rest on the '
                      'hardest --prune-keep share by EL2N score (a prototype '
                      'measured on eval: does the compute it saves pay for a '
                      'wider net? 0 is off)')
  p.add_argument('--prune-keep', type=float, default=1.0,
                 help='share of the training images kept after --prune-after')
  p.add_argument('--crop-epochs', type=int, default=0,
                 help='train the first K epochs on random --crop-size crops '
                      '(progressive resizing, a prototype measured on eval; '
                      '0 is off)')
  p.add_argument('--crop-size', type=int, default=24,
                 help='side of the crops of --crop-epochs')
  p.add_argument('--save-weights', default=None,
                 help='save the (last) trained model\'s weights here '
                      '(.weights.h5), e.g. as a --distill-from teacher')
  p.add_argument('--distill-from', default=None,
                 help='a teacher\'s .weights.h5 (the default architecture, '
                      'with the common --model-param); train on its served '
                      'probabilities mixed with the labels (a prototype '
                      'measured on eval)')
  p.add_argument('--distill-weight', type=float, default=0.5,
                 help='the teacher\'s share of the training targets')
  p.add_argument('--output', default=os.path.join(
      os.path.dirname(os.path.abspath(__file__)), 'results', 'recipes.json'))
  args = p.parse_args(argv)
  if not 0 < args.train_fraction <= 1:
    p.error(f'--train-fraction must be in (0, 1], got {args.train_fraction}')
  if args.mixup < 0:
    p.error(f'--mixup must be >= 0, got {args.mixup}')
  if not 0 <= args.clean_final_epochs < args.epochs:
    p.error(f'--clean-final-epochs must be in [0, --epochs), got '
            f'{args.clean_final_epochs}')
  if args.clean_final_epochs and args.mixup:
    p.error('--clean-final-epochs and --mixup do not combine')
  if not 0 <= args.prune_after < args.epochs:
    p.error(f'--prune-after must be in [0, --epochs), got {args.prune_after}')
  if not 0 < args.prune_keep <= 1:
    p.error(f'--prune-keep must be in (0, 1], got {args.prune_keep}')
  if args.prune_after and (args.mixup or args.clean_final_epochs):
    p.error('--prune-after combines with neither --mixup nor '
            '--clean-final-epochs')
  if not 0 <= args.crop_epochs < args.epochs:
    p.error(f'--crop-epochs must be in [0, --epochs), got {args.crop_epochs}')
  if args.crop_epochs and (args.mixup or args.clean_final_epochs
                           or args.prune_after):
    p.error('--crop-epochs combines with no other training prototype')
  if not 0 < args.distill_weight <= 1:
    p.error(f'--distill-weight must be in (0, 1], got {args.distill_weight}')
  if args.distill_from and (args.mixup or args.clean_final_epochs
                            or args.prune_after or args.crop_epochs):
    p.error('--distill-from combines with no other training prototype')
  import tf_keras as keras  # pylint: disable=g-import-not-at-top
  from models import model as model_lib  # pylint: disable=g-import-not-at-top
  try:
    common = options.model_overrides(args.model_param)
  except options.UsageError as e:
    p.error(str(e))
  (x, y), (xv, yv) = _data()
  if args.train_fraction < 1:
    keep = np.sort(np.random.default_rng(0).permutation(len(x))[
        :int(round(len(x) * args.train_fraction))])
    x, y = x[keep], y[keep]
  print(f'hardware: {hardware.describe()}; {len(x)} train, {len(xv)} eval '
        f'images; {args.epochs} epochs; common {common}', flush=True)
  results = {'hardware': hardware.describe(), 'epochs': args.epochs,
             'common': common, 'train_images': len(x),
             'mixup_alpha': args.mixup,
             'clean_final_epochs': args.clean_final_epochs,
             'prune_after': args.prune_after, 'prune_keep': args.prune_keep,
             'crop_epochs': args.crop_epochs,
             'crop_size': args.crop_size if args.crop_epochs else None,
             'distill_from': args.distill_from,
             'distill_weight': args.distill_weight if args.distill_from
                               else None,
             'recipes': {}}
  teacher_probabilities = None
  if args.distill_from:
    # The Trainer's own served views (TTA mean, before the temperature).
    from models import trainer  # pylint: disable=g-import-not-at-top
    teacher_cfg = ModelConfig.from_dict({**ModelConfig().to_dict(), **common})
    teacher = model_lib.build_model(teacher_cfg)
    teacher.load_weights(args.distill_from)
    teacher_probabilities = trainer.served_probabilities(teacher, x,
                                                         teacher_cfg)
    results['teacher_eval'] = tta_accuracies(teacher, xv, yv)
    print(f'teacher {args.distill_from}: train accuracy (10 views) '
          f'{np.mean(teacher_probabilities.argmax(1) == y):.4f}, eval '
          f'{results["teacher_eval"]}', flush=True)
    del teacher
  for name, params in RECIPES.items():
    if args.only and args.only not in name or (
        args.only in RECIPES and args.only != name):
      continue
    cfg = ModelConfig.from_dict({**ModelConfig().to_dict(), **common, **params,
                                 'epochs': args.epochs})
    keras.utils.set_random_seed(cfg.seed)
    model = model_lib.build_model(cfg)
    callbacks = fit_callbacks(cfg)
    start = time.perf_counter()
    if args.mixup or teacher_probabilities is not None:
      # Soft labels: the same optimizer, categorical loss and accuracy.
      model.compile(optimizer=model.optimizer,
                    loss='categorical_crossentropy', metrics=['accuracy'])
      if args.mixup:
        training = {'x': mixup_dataset(x, y, cfg.batch_size, args.mixup,
                                       cfg.seed)}
      else:
        training = {'x': x, 'batch_size': cfg.batch_size,
                    'y': distillation_targets(
                        teacher_probabilities, y, args.distill_weight,
                        cfg.label_smoothing)}
      history = model.fit(
          **training, validation_data=(xv, np.eye(features.NUM_CLASSES)[yv]),
          epochs=cfg.epochs, callbacks=callbacks, verbose=2)
      val = history.history['val_accuracy']
    elif args.prune_after:
      history = model.fit(x, y, validation_data=(xv, yv),
                          epochs=args.prune_after, batch_size=cfg.batch_size,
                          callbacks=callbacks, verbose=2)
      val = history.history['val_sparse_categorical_accuracy']
      kept = hardest(el2n_scores(model, x, y), y, args.prune_keep)
      print(f'pruned to the {len(kept)} hardest of {len(x)} images; per '
            f'class: {np.bincount(y[kept], minlength=features.NUM_CLASSES)}',
            flush=True)
      # The optimizer state and LR schedule go on, on fewer images.
      val += model.fit(
          x[kept], y[kept], validation_data=(xv, yv),
          initial_epoch=args.prune_after, epochs=cfg.epochs,
          batch_size=cfg.batch_size, callbacks=callbacks,
          verbose=2).history['val_sparse_categorical_accuracy']
    elif args.crop_epochs:
      if cfg.residual or cfg.squeeze_excitation:
        p.error('--crop-epochs needs a plain conv stack (no residual, no SE)')
      try:
        small = cropped(model, args.crop_size)
      except ValueError as e:
        p.error(f'--crop-size {args.crop_size} does not end in the map the '
                f'dense head was built for: {e}')
      val = small.fit(
          random_crops(x, y, args.crop_size, cfg.batch_size, cfg.seed),
          validation_data=(center_crops(xv, args.crop_size), yv),
          epochs=args.crop_epochs, callbacks=callbacks,
          verbose=2).history['val_sparse_categorical_accuracy']
      phase_seconds = [time.perf_counter() - start]
      # The same weights, optimizer state and LR schedule go on at 28 x 28.
      val += model.fit(
          x, y, validation_data=(xv, yv), initial_epoch=args.crop_epochs,
          epochs=cfg.epochs, batch_size=cfg.batch_size, callbacks=callbacks,
          verbose=2).history['val_sparse_categorical_accuracy']
      phase_seconds.append(time.perf_counter() - start - phase_seconds[0])
    else:
      augmented = cfg.epochs - args.clean_final_epochs
      history = model.fit(x, y, validation_data=(xv, yv), epochs=augmented,
                          batch_size=cfg.batch_size, callbacks=callbacks,
                          verbose=2)
      val = history.history['val_sparse_categorical_accuracy']
      if args.clean_final_epochs:
        # The same optimizer state and LR schedule go on; the augmentation
        # layer becomes the identity and the training step is traced anew.
        _clean_training(model)
        val += model.fit(
            x, y, validation_data=(xv, yv), initial_epoch=augmented,
            epochs=cfg.epochs, batch_size=cfg.batch_size, callbacks=callbacks,
            verbose=2).history['val_sparse_categorical_accuracy']
    seconds = time.perf_counter() - start
    # Images trained on, summed over epochs; EL2N scoring is a forward pass,
    # about a third of a training pass over the same images.
    image_epochs = len(x) * cfg.epochs
    if args.prune_after:
      image_epochs = (len(x) * (args.prune_after + 1 / 3)
                      + len(kept) * (cfg.epochs - args.prune_after))
    tta = tta_accuracies(model, xv, yv)
    results['recipes'][name] = {
        # The whole configuration trained: defaults change between sessions.
        'params': params, 'config': cfg.to_dict(),
        'val_accuracy_last': val[-1],
        'val_accuracy_best': max(val), 'val_accuracy_per_epoch': val,
        'val_accuracy_tta': tta,
        'seconds_per_epoch': seconds / cfg.epochs,
        'image_epochs': image_epochs,
        'images_per_s': image_epochs / seconds}
    if args.crop_epochs:
      results['recipes'][name]['seconds_per_epoch_cropped_full'] = [
          phase_seconds[0] / args.crop_epochs,
          phase_seconds[1] / (cfg.epochs - args.crop_epochs)]
    print(f'{name}: eval accuracy last {val[-1]:.4f}, best {max(val):.4f}, '
          f'flip TTA {tta["flip_tta"]:.4f}, flip + shift TTA '
          f'{tta["flip_shift_tta"]:.4f}, with diagonals '
          f'{tta["flip_shift_diagonal_tta"]:.4f}; {seconds / cfg.epochs:.0f} s/epoch',
          flush=True)
    if args.save_weights:
      model.save_weights(args.save_weights)
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, 'w') as f:
      json.dump(results, f, indent=1)
  print(f'\n{"recipe":40} {"eval last":>9} {"best":>7} {"flip TTA":>8} '
        f'{"s/epoch":>8}')
  for name, r in results['recipes'].items():
    print(f'{name:40} {r["val_accuracy_last"]:9.4f} '
          f'{r["val_accuracy_best"]:7.4f} '
          f'{r["val_accuracy_tta"]["flip_tta"]:8.4f} '
          f'{r["seconds_per_epoch"]:8.0f}')
  return 0


if __name__ == '__main__':
  raise SystemExit(main())
