"""Random affine augmentation and random erasing as Keras layers (training only).

Keras 2 has no shear layer, and chaining four layers resamples the image four
times; one projective transform per image does rotation, shift, shear and zoom
in a single resampling, like Keras' ImageDataGenerator did, with nearest fill.
"""

import math

import tensorflow as tf
import tf_keras as keras


class RandomAffine(keras.layers.Layer):
  """Rotates, shifts, shears, zooms and (optionally) flips NHWC images."""

  def __init__(self, rotation_degrees: float, shift_fraction: float,
               shear_fraction: float, zoom_fraction: float,
               horizontal_flip: bool, probability: float = 1.0, seed: int = 0,
               whole_pixel_shift: bool = False, **kwargs):
    super().__init__(**kwargs)
    self.rotation = math.radians(rotation_degrees)
    self.shift = shift_fraction
    self.shear = shear_fraction
    self.zoom = zoom_fraction
    self.horizontal_flip = horizontal_flip
    self.probability = probability
    self.seed = seed
    self.whole_pixel_shift = whole_pixel_shift
    self._rng = tf.random.Generator.from_seed(seed)

  def get_config(self):
    return {**super().get_config(),
            'rotation_degrees': math.degrees(self.rotation),
            'shift_fraction': self.shift, 'shear_fraction': self.shear,
            'zoom_fraction': self.zoom, 'horizontal_flip': self.horizontal_flip,
            'probability': self.probability, 'seed': self.seed,
            'whole_pixel_shift': self.whole_pixel_shift}

  def call(self, images, training=None):
    if not training:
      return images
    return self._augment(images)

  def _augment(self, images):
    n = tf.shape(images)[0]
    h = tf.cast(tf.shape(images)[1], tf.float32)
    w = tf.cast(tf.shape(images)[2], tf.float32)

    # Images not drawn for augmentation get the identity transform (but may
    # still be flipped), so each batch keeps some clean images.
    apply = tf.cast(self._rng.uniform([n]) < self.probability, tf.float32)

    def uniform(limit):
      return self._rng.uniform([n], -limit, limit) * apply

    angle = uniform(self.rotation)
    shear = uniform(self.shear)
    zoom_x = 1.0 + uniform(self.zoom)
    zoom_y = 1.0 + uniform(self.zoom)
    dx = uniform(self.shift) * w
    dy = uniform(self.shift) * h
    if self.whole_pixel_shift:
      # A shift by whole pixels moves the image without resampling it
      # (bilinear interpolation at a fractional shift blurs it, and the
      # model never sees blurred images outside training).
      dx, dy = tf.round(dx), tf.round(dy)
    flip = tf.ones([n])
    if self.horizontal_flip:
      flip = tf.where(self._rng.uniform([n]) < 0.5, -1.0, 1.0)

    # Matrix mapping output (x, y) to input coordinates, about the centre:
    # in = R(angle) . Shear . Zoom . Flip . (out - c) + c + shift.
    cos, sin = tf.cos(angle), tf.sin(angle)
    a00 = cos * zoom_x * flip
    a01 = (-sin + cos * shear) * zoom_y
    a10 = sin * zoom_x * flip
    a11 = (cos + sin * shear) * zoom_y
    cx, cy = (w - 1) / 2, (h - 1) / 2
    b0 = cx - a00 * cx - a01 * cy + dx
    b1 = cy - a10 * cx - a11 * cy + dy
    zeros = tf.zeros([n])
    transforms = tf.stack([a00, a01, b0, a10, a11, b1, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms,
        output_shape=tf.shape(images)[1:3], fill_value=0.0,
        interpolation='BILINEAR', fill_mode='NEAREST')


class RandomErasing(keras.layers.Layer):
  """Blanks one random rectangle per image (Zhong et al., 2017).

  With `probability`, a rectangle of 2-40 % of the image area and aspect
  ratio 0.3-3.3 is set to `fill` (0: the mean of standardized pixels). It
  teaches the model not to rely on any one region, which helps most on the
  garments that differ in a small part (Shirt vs. T-shirt vs. Coat).
  """

  def __init__(self, probability: float, fill: float = 0.0, seed: int = 0,
               **kwargs):
    super().__init__(**kwargs)
    self.probability = probability
    self.fill = fill
    self.seed = seed
    self._rng = tf.random.Generator.from_seed(seed + 1)

  def get_config(self):
    return {**super().get_config(), 'probability': self.probability,
            'fill': self.fill, 'seed': self.seed}

  def call(self, images, training=None):
    if not training or self.probability <= 0:
      return images
    n = tf.shape(images)[0]
    h = tf.cast(tf.shape(images)[1], tf.float32)
    w = tf.cast(tf.shape(images)[2], tf.float32)
    area = self._rng.uniform([n], 0.02, 0.4) * h * w
    aspect = tf.exp(self._rng.uniform([n], math.log(0.3), math.log(1 / 0.3)))
    eh = tf.minimum(tf.sqrt(area * aspect), h)
    ew = tf.minimum(tf.sqrt(area / aspect), w)
    y0 = self._rng.uniform([n]) * (h - eh)
    x0 = self._rng.uniform([n]) * (w - ew)
    apply = self._rng.uniform([n]) < self.probability
    rows = tf.range(h)[None, :]
    cols = tf.range(w)[None, :]
    in_rows = (rows >= y0[:, None]) & (rows < (y0 + eh)[:, None])  # [n, h]
    in_cols = (cols >= x0[:, None]) & (cols < (x0 + ew)[:, None])  # [n, w]
    mask = (in_rows[:, :, None] & in_cols[:, None, :]
            & apply[:, None, None])[..., None]
    return tf.where(mask, tf.cast(self.fill, images.dtype), images)
