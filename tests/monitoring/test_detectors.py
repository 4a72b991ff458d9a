"""The statistical tests: each alarms on its shift, natural windows pass, and
Holm's correction holds the false-alarm rate at alpha.

Real test-set images; the "model" is a fixed noisy function of the true label
(a Dirichlet draw per image), so window and reference probabilities come from
one distribution unless a test shifts them.
"""

import json
import os
import time

import numpy as np
import pytest
from scipy import ndimage

from monitor_testenv import VERSION, summaries, write_logs  # pylint: disable=g-bad-import-order
from monitoring import config as config_lib
from monitoring import detectors

REF = 1000  # reference images: test_images[:REF]; windows come from the rest


def _probabilities(labels, seed=0, confidence=4.0):
  rng = np.random.default_rng(seed)
  p = rng.dirichlet(np.full(10, 0.3), len(labels))
  p[np.arange(len(labels)), labels] += confidence
  return p / p.sum(axis=1, keepdims=True)


@pytest.fixture(scope='module')
def data(test_images):
  images, labels = test_images
  flat = images.reshape(len(images), -1).astype(np.int64)
  probs = _probabilities(labels)
  ref = detectors.Reference.from_outputs(flat[:REF], probs[:REF], VERSION,
                                         'test reference')
  return ref, flat, labels.astype(np.int64), probs


def _run(ref, pixels, probs, alpha=0.05, versions=None):
  probs = np.asarray(probs)
  return detectors.run(ref, pixels, probs, np.argmax(probs, axis=1),
                       versions or [VERSION] * len(pixels), alpha)


def _alarms(tests):
  return {r.name for r in tests.results if r.alarm}


def test_a_natural_window_passes_every_test(data):
  ref, flat, _, probs = data
  tests = _run(ref, flat[REF:REF + 500], probs[REF:REF + 500])
  assert [r.name for r in tests.results] == list(detectors.TESTS)
  assert not tests.alarm and not tests.skipped and tests.lines() == []
  assert all(r.p_value > r.threshold for r in tests.results)


def test_rotated_images_alarm_the_image_test_only(data):
  ref, flat, _, probs = data
  w = slice(REF, REF + 500)
  rotated = ndimage.rotate(flat[w].reshape(-1, 28, 28), 20, axes=(1, 2),
                           reshape=False, order=1).reshape(500, -1)
  tests = _run(ref, rotated, probs[w])   # the model's outputs unchanged
  assert _alarms(tests) == {detectors.IMAGE_FEATURES}
  (line,) = tests.lines()
  assert line.startswith('[test] image_features: KS D ')
  assert 'p = ' in line and 'ALARM' in line


def test_shifted_images_and_noise_alarm_the_image_test(data):
  ref, flat, _, probs = data
  w = slice(REF, REF + 500)
  moved = ndimage.shift(flat[w].reshape(-1, 28, 28), (0, 3, -3), order=0)
  assert detectors.IMAGE_FEATURES in _alarms(
      _run(ref, moved.reshape(500, -1), probs[w]))
  noisy = np.clip(flat[w] + np.random.default_rng(1).normal(0, 10, (500, 784)),
                  0, 255).round()
  tests = _run(ref, noisy, probs[w])
  assert detectors.IMAGE_FEATURES in _alarms(tests)
  assert 'background share' in tests.results[-1].detail


def test_less_confident_outputs_alarm_bbsd(data):
  ref, flat, labels, _ = data
  w = slice(REF, REF + 500)
  unsure = _probabilities(labels[w], seed=3, confidence=1.5)
  tests = _run(ref, flat[w], unsure)
  assert detectors.BBSD in _alarms(tests)
  assert detectors.IMAGE_FEATURES not in _alarms(tests)


def test_a_missing_class_alarms_the_class_test(data):
  ref, flat, labels, probs = data
  keep = np.flatnonzero(labels[REF:] != 1)[:500] + REF   # no trousers
  tests = _run(ref, flat[keep], probs[keep])
  assert detectors.PREDICTED_CLASS in _alarms(tests)
  result = next(r for r in tests.results
                if r.name == detectors.PREDICTED_CLASS)
  assert result.statistic_name == 'chi-square'
  assert result.detail.startswith('Trouser 0.0% of the window')


def test_holm_holds_alpha_on_null_windows(data):
  """200 natural windows of 100: the share with any alarm stays <= alpha."""
  ref, flat, _, probs = data
  rng = np.random.default_rng(7)
  alarms = 0
  for _ in range(200):
    pick = rng.choice(np.arange(REF, len(flat)), 100, replace=False)
    alarms += _run(ref, flat[pick], probs[pick], alpha=0.05).alarm
  # Binomial(200, 0.05) exceeds 18 (9 %) with probability < 1 %.
  assert alarms / 200 <= 0.09


def test_holm_step_down():
  rejected, levels = detectors.holm([0.01, 0.04, 0.02], 0.05)
  assert levels == pytest.approx([0.05 / 3, 0.05 / 1, 0.05 / 2])
  assert rejected == [True, True, True]
  rejected, _ = detectors.holm([0.01, 0.04, 0.03], 0.05)
  assert rejected == [True, False, False]   # 0.03 > 0.025 stops the steps


def test_unusable_rows_and_other_versions_are_counted_not_tested(data):
  ref, flat, _, probs = data
  w = slice(REF, REF + 300)
  rows = [list(p) for p in probs[w]]
  rows[0] = [float('nan')] * 10
  rows[1] = None
  rows[2] = rows[2][:9]
  versions = [VERSION] * 250 + ['8'] * 50
  tests = detectors.run(ref, flat[w].tolist(), rows,
                        [int(np.argmax(p)) for p in probs[w]], versions)
  bbsd = tests.results[0]
  assert bbsd.name == detectors.BBSD and bbsd.instances == 247
  assert ('50 instances of model versions without a reference left out (8)'
          in bbsd.detail)
  assert '3 rows without 10 usable probabilities' in bbsd.detail
  assert tests.results[-1].instances == 300   # images of every version


def test_each_model_version_is_tested_against_its_own_reference(data):
  """A window across a rollout: version 8's outputs (less confident) are
  compared with version 8's reference, not version 7's, so neither alarms;
  against 7's reference they would."""
  ref, flat, labels, probs = data
  sharp = probs[REF:]
  soft = _probabilities(labels, seed=5, confidence=1.0)
  ref8 = detectors.Reference.from_outputs(flat[:REF], soft[:REF], '8',
                                          'version 8 reference')
  w = slice(REF, REF + 600)
  pixels = flat[w].tolist()
  mixed = [list(p) for p in sharp[:300]] + [list(p) for p in soft[w][300:]]
  ids = [int(np.argmax(p)) for p in mixed]
  versions = [VERSION] * 300 + ['8'] * 300
  tests = detectors.run(ref, pixels, mixed, ids, versions, others={'8': ref8})
  by = {(r.name, r.model_version): r for r in tests.results}
  assert set(by) == {(detectors.BBSD, VERSION), (detectors.BBSD, '8'),
                     (detectors.PREDICTED_CLASS, VERSION),
                     (detectors.PREDICTED_CLASS, '8'),
                     (detectors.IMAGE_FEATURES, None)}
  assert by[detectors.BBSD, '8'].instances == 300
  assert by[detectors.BBSD, '8'].detail.startswith('model 8: ')
  assert not tests.alarm, tests.lines()
  wrong = detectors.run(ref, pixels, mixed, ids, [VERSION] * 600)
  assert wrong.results[0].alarm  # one reference for both: a false alarm


def test_without_reference_or_data_tests_are_skipped_with_a_reason(data):
  ref, flat, _, probs = data
  tests = detectors.run(None, [], [], [], [], 0.05, 'no SavedModel at /x')
  assert tests.results == () and not tests.alarm
  assert dict(tests.skipped) == {t: 'no SavedModel at /x'
                                 for t in detectors.TESTS}
  tests = _run(ref, flat[REF:REF + 10], probs[REF:REF + 10])
  assert [t for t, _ in tests.skipped] == list(detectors.TESTS)
  assert 'fewer than 50' in tests.skipped[0][1]


def test_reference_round_trip_and_bad_file(data, tmp_path):
  ref = data[0]
  path = str(tmp_path / 'ref.npz')
  ref.save(path)
  loaded = detectors.Reference.load(path)
  assert loaded.model_version == VERSION and len(loaded) == REF
  np.testing.assert_allclose(loaded.image_features, ref.image_features)
  (tmp_path / 'bad.npz').write_text('not numpy')
  with pytest.raises(ValueError, match='not a monitoring reference'):
    detectors.Reference.load(str(tmp_path / 'bad.npz'))


def test_the_pipelines_reference_file_is_read_as_a_reference(data, tmp_path):
  """pipeline/reference.py's file (or its artifact directory) becomes the
  same Reference the tests use; anything else is refused by name."""
  from monitoring import reference as monitor_reference
  from pipeline import reference as pipeline_reference
  ref, pixels = data[0], data[1][:REF]
  pipeline_reference.write(str(tmp_path / pipeline_reference.FILE), pixels,
                           ref.probabilities, 'held-out images')
  with open(tmp_path / pipeline_reference.FILE, 'rb') as f:
    loaded = monitor_reference.from_pipeline(f.read(), 'x', VERSION, 'how')
  assert loaded.description == f'model {VERSION} on held-out images (how)'
  given = monitor_reference._load_given(str(tmp_path), VERSION)  # the artifact
  assert given.description == (f'model {VERSION} on held-out images (given '
                               f'with --reference {tmp_path})')
  np.testing.assert_allclose(loaded.image_features, ref.image_features)
  np.testing.assert_allclose(loaded.probabilities, ref.probabilities,
                             atol=1e-6)
  with pytest.raises(ValueError, match='x: not a monitoring reference'):
    monitor_reference.from_pipeline(b'not numpy', 'x', VERSION, 'how')
  np.savez(tmp_path / 'wrong.npz', pixels=pixels[:, :100],
           probabilities=ref.probabilities, description='d')
  with pytest.raises(ValueError, match=r'shapes \(1000, 100\)'):
    pipeline_reference.read(str(tmp_path / 'wrong.npz'))


def test_the_reference_file_is_written_into_a_fresh_artifact_uri(data,
                                                                  tmp_path):
  """An executor gets an output URI that need not exist yet (the Vertex
  dry run found this)."""
  from pipeline import reference as pipeline_reference
  ref, pixels = data[0], data[1][:REF]
  path = str(tmp_path / 'MonitoringReference' / 'reference' / '9' / 'ref.npz')
  pipeline_reference.write(path, pixels, ref.probabilities, 'held out')
  read_pixels, probabilities, description = pipeline_reference.read(path)
  np.testing.assert_array_equal(read_pixels, pixels)
  assert probabilities.shape == (REF, 10) and description == 'held out'


# `fmnist monitor` with the tests: the proxy's fake answers (monitor_testenv:
# 0.91 on the true label) are the reference's outputs too.

def _fake_reference(images, labels, path):
  probs = np.full((len(labels), 10), 0.01)
  probs[np.arange(len(labels)), labels] = 0.91
  detectors.Reference.from_outputs(
      images.reshape(len(images), -1), probs, VERSION,
      'fake model on test images').save(path)
  return path


def test_monitor_reports_the_tests_and_alarms_on_rotation(home, monitor,
                                                          test_images,
                                                          tmp_path):
  images, labels = test_images
  ref = _fake_reference(images[:REF], labels[:REF], str(tmp_path / 'r.npz'))
  logs = os.path.join(home, 'request_logs')
  write_logs(logs, images[REF:REF + 600], labels[REF:REF + 600],
             timestamp=1_700_000_000)
  status, out, err = monitor('--reference', ref)
  assert status == config_lib.EXIT_HEALTHY, out + err
  assert 'tested: bbsd KS D ' in out and 'tested: image_features' in out
  rotated = ndimage.rotate(images[REF:REF + 600], 25, axes=(1, 2),
                           reshape=False, order=1)
  write_logs(logs, rotated, labels[REF:REF + 600])
  status, out, err = monitor('--reference', ref, '--last', '600')
  assert status == config_lib.EXIT_UNHEALTHY, out + err
  assert '  [test] image_features: KS D ' in out
  summary = summaries(home)[-1]
  assert summary['verdict'] == 'unhealthy'
  assert summary['tests']['alpha'] == 0.05
  assert {r['name']: r['alarm'] for r in summary['tests']['results']} == {
      'bbsd': False, 'predicted_class': False, 'image_features': True}
  run_dir = os.path.join(home, 'monitoring', summary['stamp'])
  assert os.path.getsize(os.path.join(run_dir, 'tests.png')) > 0
  with open(os.path.join(run_dir, 'report.html'), encoding='utf-8') as f:
    page = f.read()
  assert 'Statistical tests' in page and 'tests.png' in page


def test_monitor_without_reference_runs_tfdv_and_says_what_was_skipped(
    home, monitor, test_images):
  images, labels = test_images
  write_logs(os.path.join(home, 'request_logs'), images[:600], labels[:600])
  status, out, err = monitor()
  assert status == config_lib.EXIT_HEALTHY, err
  assert (f'skipped: bbsd: no reference for model {VERSION}: it has no '
          'MonitoringReference artifact in MLMD') in out
  (summary,) = summaries(home)
  assert [s['test'] for s in summary['tests']['skipped']] == list(
      detectors.TESTS)


def test_monitor_refuses_a_bad_reference_or_alpha(home, monitor, test_images,
                                                  tmp_path):
  images, labels = test_images
  write_logs(os.path.join(home, 'request_logs'), images[:600], labels[:600])
  (tmp_path / 'x.npz').write_text('{}')
  status, _, err = monitor('--reference', str(tmp_path / 'x.npz'))
  assert status == config_lib.EXIT_USAGE
  assert err.startswith('error: --reference ') and 'Traceback' not in err
  status, _, err = monitor('--alpha', '1.5')
  assert status == config_lib.EXIT_USAGE and '--alpha 1.5' in err


def _pipeline_reference(home, statistics_uri, pixels, probabilities,
                        version=VERSION):
  """A newer run of span 1 pushed as `version`, with the pipeline's
  reference."""
  from mlmd_fixture import PipelineStore
  from pipeline import reference as pipeline_reference
  uri = os.path.join(home, 'tfx', 'MonitoringReference', 'reference', version)
  os.makedirs(uri)
  if pixels is not None:
    pipeline_reference.write(os.path.join(uri, pipeline_reference.FILE),
                             pixels, probabilities, 'held-out images')
  PipelineStore(os.path.join(home, 'metadata.sqlite')).record_run(
      os.path.join(home, 'tfx'), 1, statistics_uri, version,
      reference_uri=uri)
  return uri


def test_the_served_models_pipeline_reference_is_found_through_lineage(
    home, monitor, test_images, statistics_uri):
  """No --reference: the MonitoringReference artifact the pipeline made for
  the served model, found in MLMD (the e2e test does it on a real run)."""
  images, labels = test_images
  probs = np.full((REF, 10), 0.01)
  probs[np.arange(REF), labels[:REF]] = 0.91
  _pipeline_reference(home, statistics_uri, images[:REF].reshape(REF, -1),
                      probs)
  write_logs(os.path.join(home, 'request_logs'), images[REF:REF + 600],
             labels[REF:REF + 600])
  status, out, err = monitor()
  assert status == config_lib.EXIT_HEALTHY, out + err
  assert 'tested: bbsd KS D ' in out and 'tested: image_features' in out
  (summary,) = summaries(home)
  assert summary['tests']['reference'] == (
      f'model {VERSION} on held-out images (the pipeline\'s '
      'MonitoringReference, found through MLMD lineage)')
  assert summary['tests']['skipped'] == []
  assert not os.path.exists(os.path.join(home, 'monitoring', 'reference'))


def test_a_window_across_a_rollout_tests_each_version_against_its_own(
    home, monitor, test_images, statistics_uri):
  """Logs of model 7 then model 8 (both pushed with references): each
  version's outputs are tested against its own MonitoringReference."""
  images, labels = test_images
  probs = np.full((REF, 10), 0.01)
  probs[np.arange(REF), labels[:REF]] = 0.91
  flat = images[:REF].reshape(REF, -1)
  _pipeline_reference(home, statistics_uri, flat, probs)
  _pipeline_reference(home, statistics_uri, flat, probs, version='8')
  logs = os.path.join(home, 'request_logs')
  write_logs(logs, images[REF:REF + 300], labels[REF:REF + 300])
  time.sleep(1.1)  # model 8's rows in a log file of the next second
  write_logs(logs, images[REF + 300:REF + 600], labels[REF + 300:REF + 600],
             version='8')
  status, out, err = monitor()
  assert status == config_lib.EXIT_HEALTHY, out + err
  (summary,) = summaries(home)
  tested = {(r['name'], r['model_version'], r['instances'])
            for r in summary['tests']['results']}
  assert {('bbsd', VERSION, 300), ('bbsd', '8', 300),
          ('image_features', None, 600)} <= tested
  assert summary['tests']['skipped'] == []


def test_monitor_refuses_a_missing_reference_file(home, monitor, test_images,
                                                  tmp_path):
  images, labels = test_images
  write_logs(os.path.join(home, 'request_logs'), images[:600], labels[:600])
  status, _, err = monitor('--reference', str(tmp_path / 'nowhere.npz'))
  assert status == config_lib.EXIT_USAGE
  assert err.startswith(f'error: --reference {tmp_path}/nowhere.npz: cannot '
                        'read it') and 'Traceback' not in err


def test_an_unreadable_pipeline_reference_is_a_skip_not_a_traceback(
    home, monitor, test_images, statistics_uri):
  images, labels = test_images
  uri = _pipeline_reference(home, statistics_uri, None, None)
  with open(os.path.join(uri, 'reference.npz'), 'wb') as f:
    f.write(b'not numpy')
  write_logs(os.path.join(home, 'request_logs'), images[:600], labels[:600])
  status, out, err = monitor()
  assert status == config_lib.EXIT_HEALTHY, err
  assert (f'skipped: bbsd: no reference for model {VERSION}: its '
          f'MonitoringReference {uri} cannot be read (ValueError: ') in out
  assert 'Traceback' not in out + err
