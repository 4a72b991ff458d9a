"""Per-class metrics derived from TFMA's confusion matrix."""

import pytest

from pipeline import summary


def test_class_metrics_from_a_confusion_matrix():
  confusion = [[8, 2, 0],
               [1, 9, 0],
               [0, 5, 0]]   # class 2 is never predicted
  m = summary.class_metrics(confusion)
  assert m[0]['precision'] == pytest.approx(8 / 9)
  assert m[0]['recall'] == pytest.approx(8 / 10)
  assert m[1]['precision'] == pytest.approx(9 / 16)
  assert m[1]['f1_score'] == pytest.approx(2 * (9 / 16) * 0.9 / (9 / 16 + 0.9))
  assert m[2] == {'precision': 0.0, 'recall': 0.0, 'f1_score': 0.0, 'count': 5}


def _run(*states):
  nodes = ('ImportExampleGen', 'LatestBlessedModel', 'Trainer', 'Evaluator',
           'Blessing', 'Pusher')
  return summary.RunSummary(
      run_id='r', span=1, metrics=None, blessed=None, pushed_to=None,
      components=[summary.ComponentRun(n, s, 1.0)
                  for n, s in zip(nodes, states)])


@pytest.mark.parametrize('states, outcome', [
    (('ran',) * 6, 'completed'),
    (('cached',) * 6, 'cached'),
    (('cached', 'ran') + ('cached',) * 4, 'cached'),  # a resolver always runs
    (('ran', 'ran', 'FAILED'), 'failed at Trainer'),
    # Killed during Trainer: MLMD keeps its execution RUNNING (issue 13: this
    # read as "completed" before).
    (('ran', 'ran', 'running'), 'not finished (stopped in Trainer)'),
    # Killed between two components: only COMPLETE executions, no Pusher.
    (('ran', 'ran', 'ran', 'ran'), 'not finished (nothing after Evaluator)'),
    (('ran',) * 5 + ('canceled',), 'not finished (stopped in Pusher)'),
])
def test_a_run_that_did_not_finish_never_reads_completed(states, outcome):
  s = _run(*states)
  assert s.outcome == outcome
  assert s.finished == (outcome in ('completed', 'cached'))
  assert summary.format_summary(s).splitlines()[0] == f'run r (span 1): {outcome}'


def test_every_mlmd_execution_state_has_a_name():
  from ml_metadata.proto import metadata_store_pb2  # pylint: disable=g-import-not-at-top
  states = metadata_store_pb2.Execution.State
  assert {v for k, v in states.items() if k != 'UNKNOWN'} <= set(summary._STATES)


def test_the_summary_shows_the_served_temperatures_fit():
  s = summary.RunSummary(
      run_id='r', span=1, metrics=None, blessed=None, pushed_to=None,
      components=[], temperature={
          'temperature': 0.6123, 'examples': 6000, 'accuracy': 0.95,
          'nll_before': 0.31, 'nll_after': 0.17,
          'mean_top_probability_before': 0.86,
          'mean_top_probability_after': 0.95})
  assert ('served temperature 0.612 (fitted on 6000 eval images: NLL 0.3100 '
          '-> 0.1700, mean top probability 0.860 -> 0.950 at accuracy 0.9500)'
          ) in summary.format_summary(s)
