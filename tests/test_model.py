"""The CNN as the design specifies it, and its typed config."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
# AutoGraph's conversion rules (private: TF has no public API for them).
from tensorflow.python.autograph.core import config as ag_config
from tensorflow.python.autograph.impl import conversion

from models import features
from models import model as model_lib
from models.augmentation import RandomAffine
from models.augmentation import RandomErasing
from models import config
from models.config import ModelConfig


def _layers(model, kind):
  return [l for l in model.layers if isinstance(l, kind)]


def test_default_architecture_is_the_measured_recipe():
  """Two convs per block at 16-32-128 (issue 10's 20-minute budget),
  dropout 0/0.2."""
  cfg = ModelConfig()
  model = model_lib.build_model(cfg)
  assert [c.filters for c in _layers(model, keras.layers.Conv2D)] == [
      16, 16, 32, 32, 128, 128]
  assert [d.units for d in _layers(model, keras.layers.Dense)] == [
      512, features.NUM_CLASSES]
  # BatchNorm after each conv and after the hidden dense layer.
  assert len(_layers(model, keras.layers.BatchNormalization)) == 6 + 1
  assert [l.rate for l in _layers(model, keras.layers.Dropout)] == [
      0.0, 0.0, 0.0, 0.2]
  opt = model.optimizer
  assert isinstance(opt, keras.optimizers.Adam)
  assert float(opt.learning_rate.numpy()) == pytest.approx(2e-3)
  assert opt.clipnorm == 1.0 and opt.weight_decay == pytest.approx(1e-5)
  assert model.output_shape == (None, features.NUM_CLASSES)
  assert model.name == 'custom-cnn-16-32-128-512-0.0-0.2'
  assert (cfg.lr_schedule, cfg.epochs, cfg.flip_tta, cfg.shift_tta,
          cfg.label_smoothing, cfg.temperature_scaling) == (
              'cosine', 28, True, True, 0.1, True)
  assert model.loss != 'sparse_categorical_crossentropy'  # smoothed


def test_the_seeds_recipe_stays_reachable():
  """config.SEEDS as --model-param overrides gives the seeds' CNN back."""
  cfg = ModelConfig.from_dict({**ModelConfig().to_dict(), **config.SEEDS})
  model = model_lib.build_model(cfg)
  assert [c.filters for c in _layers(model, keras.layers.Conv2D)] == [
      32, 32, 64, 64, 128, 128]
  assert [l.rate for l in _layers(model, keras.layers.Dropout)] == [
      0.25, 0.25, 0.25, 0.5]
  assert (cfg.rotation_degrees, cfg.augment_probability, cfg.lr_schedule,
          cfg.epochs, cfg.flip_tta, cfg.shift_tta, cfg.learning_rate,
          cfg.label_smoothing, cfg.temperature_scaling) == (
              15.0, 0.3, 'plateau', 30, False, False, 1e-3, 0.0, False)
  assert model.loss == 'sparse_categorical_crossentropy'


def test_residual_blocks_add_the_input_back_and_pool_globally():
  """residual=True turns each pair of convs into a basic block: the output is
  ReLU(branch + input), the input projected by a 1x1 conv where the width
  changes; global_pool feeds the dense layer the last width, not 3x3x it."""
  cfg = ModelConfig(conv_filters=(16, 32, 64), convs_per_block=4,
                    residual=True, global_pool=True)
  model = model_lib.build_model(cfg)
  convs = _layers(model, keras.layers.Conv2D)
  assert [c.kernel_size for c in convs].count((1, 1)) == 3  # 1->16, 16->32, 32->64
  assert [c.filters for c in convs if c.kernel_size == (3, 3)] == (
      [16] * 4 + [32] * 4 + [64] * 4)
  assert len(_layers(model, keras.layers.Add)) == 3 * 2
  hidden = _layers(model, keras.layers.Dense)[0]
  assert hidden.kernel.shape == (64, 512)
  assert model.name == 'custom-resnet-16-32-64-gap-512-0.0-0.2'
  # With the second conv's BatchNorm zeroed, a same-width block is the
  # identity on a ReLU output: the shortcut carries the input unchanged.
  add = _layers(model, keras.layers.Add)[1]  # the first block's second unit
  branch_bn = add.input[0].node.layer
  branch_bn.set_weights([np.zeros_like(w) for w in branch_bn.get_weights()[:2]]
                        + branch_bn.get_weights()[2:])
  unit = keras.Model(model.input, [add.input[1], add.output])
  before, after = unit(np.random.default_rng(0).normal(
      size=(4, features.NUM_PIXELS)).astype(np.float32))
  np.testing.assert_allclose(after.numpy(), np.maximum(before.numpy(), 0),
                             atol=1e-6)
  with pytest.raises(ValueError, match='even'):
    ModelConfig(convs_per_block=3, residual=True)


def test_activation_replaces_every_relu():
  """activation='swish' puts x * sigmoid(x) after each conv and the dense
  layer (the softmax output stays), names the run after it, and an unknown
  name is refused before anything is built."""
  model = model_lib.build_model(ModelConfig(activation='swish'))
  acts = _layers(model, keras.layers.Activation)
  assert len(acts) == 6 + 1
  x = tf.constant([-2.0, 0.0, 3.0])
  for layer in acts:
    np.testing.assert_allclose(layer(x).numpy(), (x * tf.sigmoid(x)).numpy(),
                               rtol=1e-6)
  assert model.name == 'custom-cnn-16-32-128-swish-512-0.0-0.2'
  relu = _layers(model_lib.build_model(ModelConfig()), keras.layers.Activation)
  np.testing.assert_array_equal(relu[0](x).numpy(), [0.0, 0.0, 3.0])
  with pytest.raises(ValueError, match='activation'):
    ModelConfig(activation='tanh')


def test_squeeze_excitation_scales_each_channel_of_each_block():
  """squeeze_excitation=r ends each block with a per-image, per-channel
  weight in (0, 1) (a bottleneck r times narrower than the block), applied
  alike at every position of the map; off by default; named in the run."""
  # Seeded: unseeded, the 2-unit ReLU bottleneck sometimes starts dead for
  # both probe images (every weight exactly 0.5), about 1 run in 5.
  keras.utils.set_random_seed(0)
  cfg = ModelConfig(conv_filters=(4, 8), dense_units=8, squeeze_excitation=2)
  model = model_lib.build_model(cfg)
  scales = _layers(model, keras.layers.Multiply)
  assert len(scales) == 2
  assert [l.units for l in _layers(model, keras.layers.Dense)][:4] == [
      2, 4, 4, 8]
  assert model.name == 'custom-cnn-4-8-se2-8-0.0-0.2'
  probe = keras.Model(model.inputs, [*scales[0].input, scales[0].output])
  images = np.random.default_rng(0).normal(size=(2, features.NUM_PIXELS))
  block, weights, scaled = probe(images.astype(np.float32))
  assert weights.shape == (2, 1, 1, 4)  # one per image and channel
  np.testing.assert_allclose(scaled, block * weights, rtol=1e-6)
  assert np.all((weights > 0) & (weights < 1))
  assert not np.allclose(weights[0], weights[1])
  assert not _layers(model_lib.build_model(ModelConfig()), keras.layers.Multiply)
  with pytest.raises(ValueError, match='squeeze_excitation'):
    ModelConfig(squeeze_excitation=-1)


def test_separable_convs_replace_the_last_convs():
  """separable_convs=k makes the last k convs each a 3x3 depthwise conv and
  a 1x1 conv across channels, with the same output widths, so no other layer
  changes; the run's name says so; residual blocks take it too; the first
  conv (one input channel) cannot be separable, and more than the rest is
  refused by name."""
  model = model_lib.build_model(ModelConfig(separable_convs=2))
  full = _layers(model, keras.layers.Conv2D)
  separable = _layers(model, keras.layers.SeparableConv2D)
  assert [c.filters for c in full] == [16, 16, 32, 32]
  assert [c.filters for c in separable] == [128, 128]
  assert separable[0].depthwise_kernel.shape == (3, 3, 32, 1)
  assert separable[-1].pointwise_kernel.shape == (1, 1, 128, 128)
  assert model.name == 'custom-cnn-16-32-128-sep2-512-0.0-0.2'
  every = model_lib.build_model(ModelConfig(separable_convs=5))
  assert [c.filters for c in _layers(every, keras.layers.SeparableConv2D)] == [
      16, 32, 32, 128, 128]
  default = model_lib.build_model(ModelConfig())
  assert not _layers(default, keras.layers.SeparableConv2D)
  for m in (model, every):
    assert m.output_shape == default.output_shape
    assert _layers(m, keras.layers.Dense)[0].kernel.shape == (
        _layers(default, keras.layers.Dense)[0].kernel.shape)
  residual = model_lib.build_model(ModelConfig(
      separable_convs=3, residual=True, conv_filters=(8, 16)))
  assert [c.filters for c in _layers(
      residual, keras.layers.SeparableConv2D)] == [8, 16, 16]
  with pytest.raises(ValueError, match='separable_convs must be at most 5'):
    ModelConfig(separable_convs=6)


def test_same_pooling_keeps_the_last_row_and_column():
  """pool_padding='same' pools the last block's 7x7 map to 4x4 (valid: 3x3,
  dropping its last row and column), so the dense layer gets 2,048 inputs;
  the run's name says so, and an unknown padding is refused."""
  def dense_inputs(model):
    flatten, = _layers(model, keras.layers.Flatten)
    return flatten.output.shape[-1]
  assert dense_inputs(model_lib.build_model(ModelConfig())) == 3 * 3 * 128
  same = model_lib.build_model(ModelConfig(pool_padding='same'))
  assert dense_inputs(same) == 4 * 4 * 128
  assert same.name == 'custom-cnn-16-32-128-poolsame-512-0.0-0.2'
  with pytest.raises(ValueError, match='pool_padding'):
    ModelConfig(pool_padding='full')


def test_callbacks_reduce_lr_and_stop_early():
  cbs = model_lib.training_callbacks(ModelConfig(lr_schedule='plateau'),
                                     '/tmp/logs')
  kinds = {type(c).__name__ for c in cbs}
  assert {'ReduceLROnPlateau', 'EarlyStopping', 'TensorBoard'} <= kinds


def test_cosine_schedule_warms_up_then_decays_to_the_floor():
  cfg = ModelConfig(lr_schedule='cosine', epochs=10, warmup_epochs=1,
                    learning_rate=1e-3, min_learning_rate=1e-5)
  lrs = [model_lib.cosine_learning_rate(cfg, e) for e in range(cfg.epochs)]
  assert lrs[0] == pytest.approx(5e-4) and lrs[1] == pytest.approx(1e-3)
  assert all(a > b for a, b in zip(lrs[1:], lrs[2:]))
  assert lrs[-1] == pytest.approx(1e-5)
  kinds = {type(c).__name__ for c in model_lib.training_callbacks(cfg, '/tmp')}
  assert 'LearningRateScheduler' in kinds and 'ReduceLROnPlateau' not in kinds
  # A planned schedule runs to the epoch it anneals for: no early stop that
  # would restore a mid-schedule epoch.
  assert 'EarlyStopping' not in kinds


def test_random_erasing_blanks_one_rectangle_in_training_only():
  layer = RandomErasing(probability=1.0, seed=2)
  images = tf.ones((16, 28, 28, 1))
  assert np.array_equal(layer(images, training=False), images)
  erased = layer(images, training=True).numpy()[..., 0]
  for image in erased:
    rows, cols = np.nonzero(image == 0)
    assert len(rows) > 0
    # One axis-aligned rectangle: its bounding box is all zeros.
    box = image[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    assert np.all(box == 0) and len(rows) == box.size
    assert 0.01 * 784 <= len(rows) <= 0.45 * 784
  never = RandomErasing(probability=0.0)
  assert np.array_equal(never(images, training=True), images)
  model = model_lib.build_model(ModelConfig(erasing_probability=0.5))
  assert 'erase' in [l.name for l in model.layers]


def test_outputs_are_probabilities():
  model = model_lib.build_model(ModelConfig(conv_filters=(4,), dense_units=8))
  probs = model.predict(np.random.rand(3, features.NUM_PIXELS), verbose=0)
  assert probs.shape == (3, 10)
  np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_augmentation_only_while_training():
  layer = RandomAffine(15, 0.15, 0.15, 0.15, True, probability=1.0, seed=1)
  images = tf.random.uniform((8, 28, 28, 1), seed=3)
  assert np.array_equal(layer(images, training=False), images)
  augmented = layer(images, training=True).numpy()
  assert augmented.shape == images.shape
  assert not np.allclose(augmented, images.numpy())
  # Nearest fill: no zero border is invented for a constant image.
  constant = tf.fill((4, 28, 28, 1), 0.7)
  np.testing.assert_allclose(layer(constant, training=True), 0.7, atol=1e-5)


def test_horizontal_flip_is_a_mirror_image():
  flip_only = RandomAffine(0, 0, 0, 0, True, probability=0.0, seed=0)
  image = tf.reshape(tf.range(28 * 28, dtype=tf.float32), (1, 28, 28, 1))
  outputs = [flip_only(image, training=True).numpy() for _ in range(20)]
  mirrored = image.numpy()[:, :, ::-1, :]
  assert any(np.allclose(o, mirrored) for o in outputs)
  assert any(np.allclose(o, image.numpy()) for o in outputs)


def test_config_round_trips_and_rejects_unknown_keys():
  cfg = ModelConfig(conv_filters=(16, 32), epochs=3)
  assert ModelConfig.from_dict(cfg.to_dict()) == cfg
  with pytest.raises(ValueError, match='unknown model config keys'):
    ModelConfig.from_dict({'epochz': 3})


def test_whole_pixel_shift_moves_the_image_without_resampling():
  """Each augmented image is the original moved by whole pixels (edges
  repeated), never a blurred mix of neighbouring pixels."""
  layer = RandomAffine(0, 0.1, 0, 0, False, probability=1.0, seed=2,
                       whole_pixel_shift=True)
  images = tf.random.uniform((16, 28, 28, 1), seed=4)
  augmented = layer(images, training=True).numpy()
  padded = np.pad(images.numpy(), ((0, 0), (3, 3), (3, 3), (0, 0)),
                  mode='edge')
  shifts = []
  for i in range(len(augmented)):
    matches = [(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4)
               if np.allclose(augmented[i], padded[i, 3 + dy:31 + dy,
                                                    3 + dx:31 + dx])]
    assert matches, f'image {i} is not a whole-pixel shift of its original'
    shifts.append(matches[0])
  assert len(set(shifts)) > 1
  # The same layer without rounding resamples: some pixels become new values.
  blurred = RandomAffine(0, 0.1, 0, 0, False, probability=1.0, seed=2)(
      images, training=True).numpy()
  assert not np.isin(blurred[0], images.numpy()[0]).all()


def test_label_smoothing_spreads_the_target():
  """With smoothing s, the target is 1 - s + s/10 on the label and s/10
  elsewhere; 0 keeps Keras' sparse cross-entropy."""
  unsmoothed = ModelConfig(conv_filters=(4,), dense_units=8,
                           label_smoothing=0.0)
  assert model_lib.build_model(unsmoothed).loss == (
      'sparse_categorical_crossentropy')
  model = model_lib.build_model(ModelConfig(conv_filters=(4,), dense_units=8,
                                            label_smoothing=0.1))
  probabilities = np.full((2, 10), 0.05, np.float32)
  probabilities[0, 3] = probabilities[1, 7] = 0.55
  loss = model.loss(np.array([3, 0]), probabilities).numpy()
  on_label, elsewhere = 1 - 0.1 + 0.01, 0.01
  expected_right = -(on_label * np.log(0.55) + 9 * elsewhere * np.log(0.05))
  expected_wrong = -(on_label * np.log(0.05) + elsewhere * np.log(0.55)
                     + 8 * elsewhere * np.log(0.05))
  np.testing.assert_allclose(loss, [expected_right, expected_wrong], rtol=1e-4)
  with pytest.raises(ValueError, match='label_smoothing'):
    ModelConfig(label_smoothing=1.0)


def test_sgd_optimizer_is_nesterov_with_decoupled_weight_decay():
  """`optimizer='sgd'`: Nesterov momentum; one step on a zero gradient
  shrinks each weight by weight * weight_decay * lr (decoupled decay)."""
  cfg = ModelConfig(conv_filters=(4,), dense_units=8, optimizer='sgd',
                    learning_rate=0.1, momentum=0.8, weight_decay=0.5)
  opt = model_lib.build_model(cfg).optimizer
  assert isinstance(opt, keras.optimizers.SGD)
  assert opt.nesterov and opt.momentum == pytest.approx(0.8)
  weight = tf.Variable([2.0, -4.0])
  opt.apply_gradients([(tf.zeros(2), weight)])
  np.testing.assert_allclose(weight.numpy(), [2.0 * 0.95, -4.0 * 0.95],
                             rtol=1e-6)
  with pytest.raises(ValueError, match='optimizer'):
    ModelConfig(optimizer='rmsprop')


def test_autograph_leaves_keras_internals_but_converts_our_layers():
  """Tracing the first step transpiled ~350 Keras functions (18 s);
  after build_model Keras' code runs as written, ours is still converted."""
  model = model_lib.build_model(ModelConfig(conv_filters=(4,), dense_units=8))
  assert conversion.is_allowlisted(model.train_step)
  assert conversion.is_allowlisted(keras.optimizers.Adam.apply_gradients)
  layer = RandomAffine(0, 0.1, 0, 0, True)
  assert not conversion.is_allowlisted(layer.call)
  model_lib.build_model(ModelConfig(conv_filters=(4,), dense_units=8))
  assert sum('tf_keras' in str(r) for r in ag_config.CONVERSION_RULES) == 1


def test_batchnorm_momentum_sets_how_fast_served_statistics_follow():
  """A short run (a smoke test) needs BatchNorm's moving statistics, which
  the exported model predicts with, to catch up within its few steps.
  Both models start from the same weights and see the same batches, so the
  layer's batch statistics are the same and only the momentum differs."""
  rng = np.random.default_rng(0)
  x = rng.normal(5.0, 1.0, (64, features.NUM_PIXELS)).astype(np.float32)
  y = np.zeros(64, np.int64)
  moved = {}
  for momentum in (0.99, 0.5):
    keras.utils.set_random_seed(0)
    model = model_lib.build_model(ModelConfig(
        conv_filters=(4,), dense_units=8, batchnorm_momentum=momentum))
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)  # 8 steps
    bn = _layers(model, keras.layers.BatchNormalization)[0]
    assert bn.momentum == momentum
    moved[momentum] = float(np.mean(np.abs(bn.moving_mean.numpy())))
  # 0.99 keeps ~92 % of the initial zeros after 8 steps, 0.5 well under 1 %.
  assert moved[0.99] < 0.2 * moved[0.5]
