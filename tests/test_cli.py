"""The `fmnist` command: help everywhere, errors as one line, not tracebacks."""

import os
import subprocess
import sys

import pytest

from fmnist import cli
from fmnist import options


def _fmnist(*args):
  env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
  return subprocess.run([sys.executable, '-m', 'fmnist.cli', *args], env=env,
                        capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize('command', [
    [], ['ingest'], ['pipeline'], ['pipeline', 'run'], ['pipeline', 'compile'],
    ['pipeline', 'dry-run'],
    ['run'], ['report'], ['serve'], ['explore'], ['automl'], ['automl', 'export'],
    ['automl', 'train'], ['automl', 'compare']])
def test_every_subcommand_has_help(command):
  with pytest.raises(SystemExit) as exit_info:
    cli.main(command + ['--help'])
  assert exit_info.value.code == 0


def test_missing_source_is_one_clear_line(tmp_path):
  result = _fmnist('ingest', '--home', str(tmp_path), '--source',
                   str(tmp_path / 'nowhere'))
  assert result.returncode == 2
  assert result.stderr.strip().startswith('error: ')
  assert 'file not found' in result.stderr
  assert 'Traceback' not in result.stderr


def test_a_path_that_cannot_be_written_is_one_clear_line(tmp_path):
  # The user's to fix (a --home that is a file, an --output under a
  # read-only mount): an `error:` line, exit 2; `-v` keeps the traceback.
  home = tmp_path / 'a-file'
  home.write_text('')
  args = ('ingest', '--home', str(home), '--train-limit', '100',
          '--test-limit', '100')
  result = _fmnist(*args)
  assert result.returncode == 2, result.stderr
  assert result.stderr.strip().splitlines()[-1] == (
      f'error: {home} is not a directory (`fmnist -v ingest ...` shows where)')
  assert 'Traceback' not in result.stderr
  result = _fmnist('-v', *args)
  assert result.returncode == 1 and 'Traceback' in result.stderr


def test_pipeline_without_data_says_what_to_do(tmp_path, capsys):
  assert cli.main(['pipeline', 'run', '--home', str(tmp_path)]) == 2
  err = capsys.readouterr().err
  assert 'no span under' in err and 'fmnist ingest' in err


@pytest.mark.parametrize('command', [
    ['report'], ['automl', 'compare', '--model', '1', '--project', 'p']])
def test_reading_a_home_without_runs_creates_nothing(tmp_path, capsys,
                                                     command):
  # A mistyped --home must not become an empty home with an empty report.
  home = tmp_path / 'typo'
  assert cli.main(command + ['--home', str(home)]) == 2
  err = capsys.readouterr().err
  assert err.startswith('error: no pipeline metadata at ')
  assert 'fmnist run' in err
  assert not home.exists()


def test_bad_flag_values_are_refused(tmp_path, capsys):
  assert cli.main(['pipeline', 'run', '--home', str(tmp_path),
                   '--epochs', '0']) == 2
  assert '--epochs must be at least 1' in capsys.readouterr().err


@pytest.mark.parametrize('flags, message', [
    (['--min-accuracy', '2'], '--min-accuracy 2.0: expected a test accuracy'),
    (['--min-accuracy', '-0.1'], '--min-accuracy -0.1: expected'),
    (['--max-accuracy-drop', '-1'], '--max-accuracy-drop -1.0: expected'),
])
def test_blessing_thresholds_out_of_range_are_refused_before_any_work(
    tmp_path, capsys, flags, message):
  # Otherwise the run ingests and trains for many minutes, then can never
  # bless (or always does).
  assert cli.main(['run', '--home', str(tmp_path / 'home')] + flags) == 2
  assert capsys.readouterr().err.startswith(f'error: {message}')
  assert not (tmp_path / 'home').exists()


def test_model_params_override_the_config(tmp_path):
  args = cli.build_parser().parse_args([
      'pipeline', 'run', '--home', str(tmp_path), '--epochs', '3',
      '--model-param', 'convs_per_block=2', '--model-param',
      'conv_filters=[16, 32]', '--model-param', 'learning_rate=0.01',
      '--model-param', 'lr_schedule=plateau'])
  model = options.pipeline_config(args).model
  assert (model.convs_per_block, model.conv_filters, model.learning_rate,
          model.epochs, model.lr_schedule) == (2, (16, 32), 0.01, 3, 'plateau')


@pytest.mark.parametrize('param, message', [
    ('convs=1', "unknown key 'convs'"),
    ('convs_per_block', 'expected KEY=VALUE'),
    ('convs_per_block=two', 'must be a JSON number'),
    ('convs_per_block=1.5', 'is not a int'),
    ('horizontal_flip=1', 'is not a bool'),
    ('lr_schedule=linear', "lr_schedule must be one of ('plateau', 'cosine')"),
    ('erasing_probability=2', 'erasing_probability must be in [0, 1]'),
    # Values TensorFlow would only refuse mid-run, with a traceback.
    ('batch_size=0', 'batch_size must be >= 1, got 0'),
    ('conv_filters=[16, 0]', 'conv_filters must be one or more whole numbers'),
    ('conv_filters=[]', 'conv_filters must be one or more whole numbers'),
    ('conv_filters=[8, 8, 8, 8, 8]', '5 blocks pool a 28x28 image away'),
    ('dense_dropout=1', 'dense_dropout must be in [0, 1), got 1'),
    ('learning_rate=-0.001', 'learning_rate must be >= 0'),
    ('warm_start_shrink=1.5', 'warm_start_shrink must be in [0, 1]'),
    ('warm_start_perturb=-0.1', 'warm_start_perturb must be >= 0'),
    ('train_minutes=-5', 'train_minutes must be >= 0'),
    ('clipnorm=0', 'clipnorm must be > 0'),
])
def test_bad_model_params_are_named(tmp_path, capsys, param, message):
  assert cli.main(['pipeline', 'run', '--home', str(tmp_path),
                   '--model-param', param]) == 2
  assert message in capsys.readouterr().err
