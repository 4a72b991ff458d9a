"""How often the monitor's statistical tests catch shifts, and how often they
cry wolf: detection and false-alarm rates per window, measured.

Windows of real test-set images (never trained on) go through a real model;
each window's pixels, class probabilities and class ids are what the proxy
logs, and `monitoring.detectors.run` (the code `fmnist monitor` runs) judges
them against a reference: the same model on 6,000 held-out training images
(60,000 - 6,000 on: what the pipeline's eval split stands for).
- natural windows: random test images -> false-alarm rate (with a 95 %
  Clopper-Pearson interval);
- shifted windows: the shift suite below -> detection rate, per test and for
  the monitor's Holm-corrected verdict.
The model is the newest pushed model under --home if there is one, else a
small stand-in CNN trained here (benchmarks/power_model.py; cached).

  .venv/bin/python benchmarks/monitor_power.py [--sizes 100,200,500,1000] \
      [--natural 200] [--shifted 40]      # ~8 minutes on 2 cores
"""

import argparse
import json
import os
import sys
import time

import numpy as np
from scipy import ndimage
from statsmodels.stats import proportion

import hardware as hardware_lib  # benchmarks/hardware.py
import power_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from monitoring import detectors  # pylint: disable=g-import-not-at-top,wrong-import-position
from pipeline import reference as reference_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from pipeline import configs  # pylint: disable=g-import-not-at-top,wrong-import-position
from pipeline import ingest  # pylint: disable=g-import-not-at-top,wrong-import-position
from pipeline import pusher  # pylint: disable=g-import-not-at-top,wrong-import-position

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'results',
                       'monitor_power.json')
REFERENCE_IMAGES = 6000
STAND_IN_DIR = '/tmp/fmnist-monitor-power-model'


def _affine(images, matrices):
  """Each image through its 2x2 matrix about the centre (bilinear, 0 fill)."""
  c = (np.array(images.shape[1:]) - 1) / 2.0
  out = np.empty_like(images, dtype=np.float64)
  for i, (img, m) in enumerate(zip(images, matrices)):
    out[i] = ndimage.affine_transform(img.astype(np.float64), m,
                                      offset=c - m @ c, order=1, cval=0.0)
  return out


def _rotation(angles_deg):
  a = np.deg2rad(angles_deg)
  return np.stack([np.stack([np.cos(a), -np.sin(a)], -1),
                   np.stack([np.sin(a), np.cos(a)], -1)], -2)


def _signs(rng, n):
  return rng.choice([-1.0, 1.0], n)


def rotate(images, rng):
  """±15-23 degrees, either direction."""
  return _affine(images, _rotation(_signs(rng, len(images)) *
                                   rng.uniform(15, 23, len(images))))


def translate(images, rng):
  """Whole pixels, each axis uniform in -3..3 (MNIST-C's translate-like)."""
  out = np.empty_like(images)
  for i, img in enumerate(images):
    dy, dx = rng.integers(-3, 4, 2)
    out[i] = ndimage.shift(img, (dy, dx), order=0, cval=0)
  return out


def shear(images, rng):
  """Horizontal shear of ±0.4 about the centre."""
  s = _signs(rng, len(images)) * 0.4
  m = np.zeros((len(images), 2, 2))
  m[:, 0, 0] = m[:, 1, 1] = 1.0
  m[:, 1, 0] = s   # x_in = x + s * (y - c): rows slide sideways
  return _affine(images, m)


def noise(sigma):
  def apply(images, rng):
    return np.clip(images + rng.normal(0, sigma, images.shape), 0, 255)
  apply.__doc__ = f'Gaussian noise, sigma {sigma} grey levels'
  return apply


def medium_image_shift(images, rng):
  """Failing Loudly's medium image shift (Keras ImageDataGenerator: rotation
  40, width/height shift 0.2, shear 0.2, zoom 0.2, horizontal flip)."""
  from tensorflow.keras.preprocessing.image import ImageDataGenerator  # pylint: disable=g-import-not-at-top
  gen = ImageDataGenerator(rotation_range=40, width_shift_range=0.2,
                           height_shift_range=0.2, shear_range=0.2,
                           zoom_range=0.2, horizontal_flip=True)
  return np.stack([gen.random_transform(img[..., None].astype(np.float64),
                                        seed=int(rng.integers(2 ** 31)))[..., 0]
                   for img in images])


def on_fraction(shift, fraction):
  def apply(images, rng):
    out = images.astype(np.float64).copy()
    k = int(round(fraction * len(images)))
    out[:k] = shift(images[:k], rng)
    return out
  return apply


def zoom_out(images, rng):
  """Shrunk to 70 % about the centre (MNIST-C's scale)."""
  del rng
  return _affine(images, np.repeat(np.eye(2)[None] / 0.7, len(images), 0))


def blur(images, rng):
  """Gaussian blur, sigma 1 px."""
  del rng
  return ndimage.gaussian_filter(images.astype(np.float64), (0, 1, 1))


def impulse_noise(images, rng):
  """Salt and pepper on 3 % of the pixels."""
  out = images.astype(np.float64).copy()
  hit = rng.random(images.shape) < 0.03
  out[hit] = rng.choice([0.0, 255.0], int(hit.sum()))
  return out


def flip(axis):
  def apply(images, rng):
    del rng
    return np.flip(images, axis=axis)
  apply.__doc__ = ('left-right' if axis == 2 else 'upside-down') + ' flip'
  return apply


SHIFTS = {
    'rotation +-15-23 deg': rotate,
    'translation +-3 px': translate,
    'shear +-0.4': shear,
    'gaussian noise sigma 1': noise(1.0),
    'gaussian noise sigma 10': noise(10.0),
    'gaussian noise sigma 100': noise(100.0),
    'FL medium image shift, 100 %': medium_image_shift,
    'FL medium image shift, 50 %': on_fraction(medium_image_shift, 0.5),
    'FL medium image shift, 10 %': on_fraction(medium_image_shift, 0.1),
    # MNIST-C-like corruptions
    'brightness +40': lambda x, rng: np.clip(x.astype(np.float64) + 40, 0, 255),
    'contrast x0.7': lambda x, rng: x * 0.7,
    'inverted': lambda x, rng: 255.0 - x,
    'blur sigma 1 px': blur,
    'impulse noise 3 %': impulse_noise,
    'zoom out to 70 %': zoom_out,
    'left-right flip': flip(2),
    'upside-down flip': flip(1),
    'inverted, 10 % of the window': on_fraction(lambda x, rng: 255.0 - x, 0.1),
}
KNOCK_OUT = 'knock-out: class 0 (T-shirt/top) absent'


def _model_dir(home: str) -> str:
  serving = configs.PipelineConfig.from_home(home).serving_dir
  versions = pusher.pushed_versions(serving)
  if versions:
    return os.path.join(serving, str(versions[-1]))
  path = os.path.join(STAND_IN_DIR, '1')
  if not os.path.exists(os.path.join(path, 'saved_model.pb')):
    print(f'no pushed model in {serving}: training the stand-in CNN '
          f'({power_model.TRAIN_IMAGES} images, {power_model.EPOCHS} epochs)')
    power_model.train(STAND_IN_DIR)
  return path


def _judge(ref, pixels, probs, alpha):
  """{test: p} and the Holm verdict per test, as `fmnist monitor` judges."""
  tests = detectors.run(ref, pixels, list(probs), list(np.argmax(probs, 1)),
                        [ref.model_version] * len(pixels), alpha)
  return {r.name: r.alarm for r in tests.results}, tests.alarm


def _rate_ci(k: int, n: int):
  """The rate k/n and its exact (Clopper-Pearson) 95 % interval."""
  lo, hi = proportion.proportion_confint(k, n, alpha=0.05, method='beta')
  return k / n, float(lo), float(hi)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--home', default=configs.DEFAULT_HOME)
  parser.add_argument('--sizes', default='100,200,500,1000')
  parser.add_argument('--natural', type=int, default=200,
                      help='natural windows per size (false alarms)')
  parser.add_argument('--shifted', type=int, default=40,
                      help='shifted windows per shift and size')
  parser.add_argument('--alpha', type=float, default=detectors.DEFAULT_ALPHA)
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args()
  started = time.time()
  hardware = hardware_lib.describe()
  print(f'hardware: {hardware}')
  rng = np.random.default_rng(args.seed)
  sizes = [int(s) for s in args.sizes.split(',')]

  model_dir = _model_dir(args.home)
  train_x, _ = ingest.read_idx_pair(configs.DEFAULT_SOURCE_DIR,
                                    ingest.TRAIN_FILES)
  held_out = train_x[-REFERENCE_IMAGES:].reshape(REFERENCE_IMAGES, -1)
  serve = reference_lib.serving_function(model_dir)
  t = time.time()
  ref = detectors.Reference.from_outputs(
      held_out, reference_lib.predict(serve, held_out), 'bench',
      f'{model_dir} on the last {REFERENCE_IMAGES} training images')
  ref_seconds = time.time() - t
  test_x, test_y = ingest.read_idx_pair(configs.DEFAULT_SOURCE_DIR,
                                        ingest.TEST_FILES)
  flat = test_x.reshape(len(test_x), -1)
  probs = reference_lib.predict(serve, flat)
  accuracy = float(np.mean(np.argmax(probs, 1) == test_y))
  print(f'model {model_dir}: test accuracy {accuracy:.4f}; reference of '
        f'{REFERENCE_IMAGES} images in {ref_seconds:.1f} s')

  results = {'hardware': hardware, 'model_dir': model_dir,
             'stand_in_model': model_dir.startswith(STAND_IN_DIR),
             'test_accuracy': accuracy, 'alpha': args.alpha,
             'reference_images': REFERENCE_IMAGES, 'natural': {},
             'shifted': {}, 'timings': {}}
  for n in sizes:
    alarms = {name: 0 for name in detectors.TESTS}
    any_alarm = 0
    for _ in range(args.natural):
      pick = rng.choice(len(flat), n, replace=False)
      per, alarm = _judge(ref, flat[pick].tolist(), probs[pick], args.alpha)
      any_alarm += alarm
      for name, a in per.items():
        alarms[name] += a
    rate, lo, hi = _rate_ci(any_alarm, args.natural)
    results['natural'][n] = {'windows': args.natural, 'false_alarm_rate': rate,
                             'ci95': [lo, hi],
                             'per_test': {k: v / args.natural
                                          for k, v in alarms.items()}}
    print(f'\nn={n}: natural windows: {any_alarm}/{args.natural} alarmed = '
          f'{rate:.3f} (95 % CI {lo:.3f}-{hi:.3f}); per test: ' + ', '.join(
              f'{k} {v}' for k, v in alarms.items()))

    print(f'{"shift (n=" + str(n) + ")":<34} {"monitor":>8} ' + ' '.join(
        f'{name:>15}' for name in detectors.TESTS) + '   accuracy')
    results['shifted'][n] = {}
    suite = dict(SHIFTS)
    suite[KNOCK_OUT] = None
    for shift_name, shift in suite.items():
      alarms = {name: 0 for name in detectors.TESTS}
      any_alarm, correct = 0, 0
      for _ in range(args.shifted):
        if shift is None:
          pick = rng.choice(np.flatnonzero(test_y != 0), n, replace=False)
          x, p = flat[pick].astype(np.float64), probs[pick]
        else:
          pick = rng.choice(len(flat), n, replace=False)
          x = shift(test_x[pick], rng).reshape(n, -1)
          x = np.rint(x)   # the proxy logs rounded grey levels
          p = reference_lib.predict(serve, x)
        correct += np.sum(np.argmax(p, 1) == test_y[pick])
        per, alarm = _judge(ref, x.astype(np.int64).tolist(), p, args.alpha)
        any_alarm += alarm
        for name, a in per.items():
          alarms[name] += a
      row = {'windows': args.shifted,
             'detection_rate': any_alarm / args.shifted,
             'per_test': {k: v / args.shifted for k, v in alarms.items()},
             'model_accuracy': float(correct / (n * args.shifted))}
      results['shifted'][n][shift_name] = row
      print(f'{shift_name:<34} {row["detection_rate"]:>8.2f} ' + ' '.join(
          f'{row["per_test"][k]:>15.2f}' for k in detectors.TESTS) +
            f'   {row["model_accuracy"]:.3f}', flush=True)

  print('\nCost of the tests (detectors.run: features, KS, chi-square; the '
        'window already read):')
  for n in (500, 2000, 10_000):
    pick = rng.choice(len(flat), n, replace=False)
    pixels, p = flat[pick].tolist(), probs[pick]
    t = time.time()
    _judge(ref, pixels, p, args.alpha)
    results['timings'][n] = time.time() - t
    print(f'  {n:>6} instances: {results["timings"][n]:.2f} s')
  results['seconds'] = time.time() - started
  os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
  with open(RESULTS, 'w', encoding='utf-8') as f:
    json.dump(results, f, indent=1)
  print(f'\nwrote {RESULTS}; {results["seconds"]:.0f} s on {hardware}')


if __name__ == '__main__':
  main()
