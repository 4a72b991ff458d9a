"""Fixtures: one real SavedModel per session, apps and loopback servers."""

import os
import threading
import time

import numpy as np
import pytest
import uvicorn

from serving import app as app_lib

from asgi_client import AppClient  # pylint: disable=g-bad-import-order
import loopback  # tests/loopback.py  # pylint: disable=g-bad-import-order
import model_fixture  # pylint: disable=g-bad-import-order
from model_fixture import make_config  # pylint: disable=g-bad-import-order

@pytest.fixture(scope='session')
def model_home(tmp_path_factory):
  """A pipeline home whose serving_model/ holds version 1 of a real export."""
  home = tmp_path_factory.mktemp('home')
  serving_dir = home / 'serving_model'
  transform_dir = model_fixture.build_saved_model(str(serving_dir / '1'))
  return {'home': str(home), 'serving_dir': str(serving_dir),
          'transform_dir': transform_dir}


@pytest.fixture(scope='session')
def second_version(model_home, tmp_path_factory):
  """A different model (other seed) exported to a spare dir, ready to push."""
  out = tmp_path_factory.mktemp('v2') / 'model'
  model_fixture.build_saved_model(str(out), seed=1,
                                  transform_dir=model_home['transform_dir'])
  return str(out)


@pytest.fixture(scope='session')
def predict_fn(model_home):
  """The SavedModel's serving_default, called directly (the reference)."""
  import tensorflow as tf
  loaded = tf.saved_model.load(os.path.join(model_home['serving_dir'], '1'))
  fn = loaded.signatures['serving_default']
  fn.keepalive = loaded
  return fn


@pytest.fixture(scope='session')
def images():
  """Deterministic 28x28 uint8 images: light blobs on black, like the data."""
  rng = np.random.default_rng(7)
  imgs = np.zeros((12, 28, 28), np.uint8)
  for i, img in enumerate(imgs):
    top, left = rng.integers(2, 8, 2)
    h, w = rng.integers(12, 20, 2)
    img[top:top + h, left:left + w] = rng.integers(60, 256, (h, w))
    img[rng.integers(0, 28, 30), rng.integers(0, 28, 30)] = i * 20
  return imgs


@pytest.fixture
def make_client(model_home, tmp_path):
  """make_client(**config overrides) -> a started TestClient (lifespan run)."""
  clients = []

  def make(config=None, **overrides):
    config = config or make_config(model_home, tmp_path, **overrides)
    client = AppClient(app_lib.create_app(config))
    client.__enter__()
    clients.append(client)
    return client

  yield make
  for c in clients:
    c.__exit__(None, None, None)


@pytest.fixture(scope='module')
def local_client(model_home, tmp_path_factory):
  """One app on the local backend shared by a module's read-only tests."""
  tmp = tmp_path_factory.mktemp('local')
  config = make_config(model_home, tmp, max_instances=16)
  with AppClient(app_lib.create_app(config)) as client:
    yield client


@pytest.fixture(scope='module')
def live_proxy(model_home, tmp_path_factory):
  """The real app under uvicorn on 127.0.0.1 (max 4 instances): its URL."""
  config = make_config(model_home, tmp_path_factory.mktemp('live'),
                       max_instances=4)
  port = loopback.free_port()
  server = uvicorn.Server(uvicorn.Config(
      app_lib.create_app(config), host='127.0.0.1', port=port,
      log_level='warning', lifespan='on'))
  thread = threading.Thread(target=server.run, daemon=True)
  thread.start()
  deadline = time.monotonic() + 60
  while not server.started:
    assert time.monotonic() < deadline, 'the proxy did not start'
    time.sleep(0.05)
  yield f'http://127.0.0.1:{port}'
  server.should_exit = True
  thread.join(30)
