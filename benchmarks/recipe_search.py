"""Every candidate recipe of a search against the default, seed by seed.

  .venv/bin/python benchmarks/recipe_search.py [--files GLOB] [--output JSON]
      [--baseline-param epochs=14] [--min-gain 0.10]

Reads benchmarks/recipes.py's results files (one run each), groups the runs
by everything but the seed (the model config, epochs, training images, mixup,
clean final epochs, pruning, cropped epochs, distillation), takes the group
whose config is today's `ModelConfig()` (with --baseline-param's overrides:
a search at another schedule) as the baseline, and compares every other
group with it seed by seed: the change in `eval` accuracy plain, with flip
TTA and with the served 10 views.
A candidate becomes the default only by the rule fixed before the search:
at least +0.05 points on average with the served views over four seeds, up
in at least three of them, within the budget's training compute. Ties are
the common outcome: one run on 6,000 images has a standard error of ~0.3
points, so the chart shades that band.

Cost: each group's training compute is its model's forward FLOPs per image
(benchmarks/onednn.py's count of the conv and dense layers) times the images
it trained on summed over its epochs, relative to the default's. Above what the
20-minute budget allows (BUDGET_COMPUTE) a candidate is "over the budget"
whatever its accuracy: a measure of what compute buys, never a default.
FLOPs are not time (32-64-128 costs 2.08x the default's FLOPs per image
and 1.85x its step time with AVX2 kernels: wider layers use the cores
better); a close call needs benchmarks/architectures.py's step time A/B.

Writes benchmarks/results/recipe_search.json, recipe_search.png (each
candidate seed by seed) and recipe_search_cost.png (mean change against
training compute).
"""

import argparse
import collections
import glob
import json
import os
from typing import Dict, List, Optional, Tuple

import matplotlib
matplotlib.use('Agg')  # files only, no display
import matplotlib.patches  # pylint: disable=g-import-not-at-top
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np
from scipy import stats

import onednn  # benchmarks/onednn.py
from fmnist import options
from models import config
from models import features
from models import model as model_lib
from models.config import ModelConfig

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'results')
SERVED = 'flip_shift_tta'  # what the exported signatures serve (10 views)
VIEWS = ('plain', 'flip_tta', SERVED)
# The acceptance rule (README "The model").
MIN_MEAN_GAIN = 0.05  # points
SEEDS_NEEDED = 4
UPS_NEEDED = 3
# One run's standard error on 6,000 `eval` images near 95 % accuracy:
# sqrt(0.95 * 0.05 / 6000) ~ 0.3 points (README "The model").
ONE_RUN_SE = 0.3
# Training compute the budget allows, relative to the default's, fixed
# before the search from the estimate of then: `make run` ~17 of the 20
# minutes on the 2-core AVX2 machine, ~14 of them training, so training may
# grow by ~3 minutes: 17 / 14 ~ 1.2. Measured there since (2026-12-07), the
# default alone takes 28-32 minutes, so 1.2x is a bound on what a candidate
# may cost, not room the 20 minutes leave (README "The model").
BUDGET_COMPUTE = 1.2
# A candidate at most this share of the default's training compute is judged
# as a cheaper default instead (fixed in stop 48, before its second seed of
# depthwise-separable convs): it meets the rule by losing no more than
# MIN_MEAN_GAIN on average over four seeds. Issue 10's 20 minutes need a
# network ~0.6-0.7x the default's time at its accuracy; 0.8 leaves room for
# FLOPs that run less efficiently than the default's.
CHEAPER_COMPUTE = 0.8
# The views a distilled run's teacher answers for (what it serves).
DISTILL_VIEWS = 10


def _run_settings(path: str) -> Tuple[Dict, int, Dict[str, float]]:
  """(settings but the seed, seed, accuracies per view) of one results file."""
  try:
    with open(path) as f:
      result = json.load(f)
    runs = list(result['recipes'].values())
  except (OSError, ValueError, KeyError, AttributeError) as e:
    raise ValueError(f'{path}: not a results file as benchmarks/recipes.py '
                     f'writes them ({e!r})') from e
  if len(runs) != 1:
    raise ValueError(f'{path}: {len(runs)} recipes; compare files of one '
                     'recipe each (recipes.py --only)')
  (run,) = runs
  # A knob added after the run did not exist then; each was added with a
  # default that keeps the old behaviour, so the run had today's default.
  settings = {**ModelConfig().to_dict(), **run['config']}
  seed = settings.pop('seed')
  settings['train_images'] = result.get('train_images')
  settings['mixup_alpha'] = result.get('mixup_alpha', 0.0)
  settings['clean_final_epochs'] = result.get('clean_final_epochs', 0)
  settings['prune_after'] = result.get('prune_after', 0)
  settings['prune_keep'] = result.get('prune_keep', 1.0)
  settings['crop_epochs'] = result.get('crop_epochs', 0)
  settings['crop_size'] = result.get('crop_size')
  # A distilled run (recipes.py --distill-from): its teacher and share.
  teacher = result.get('distill_from')
  settings['distill_from'] = os.path.basename(teacher) if teacher else None
  settings['distill_weight'] = result.get('distill_weight')
  return settings, seed, run['val_accuracy_tta']


def _key(settings: Dict) -> str:
  return json.dumps(settings, sort_keys=True)


def image_epochs(settings: Dict) -> float:
  """Images trained on, summed over the epochs. A pruned run (recipes.py
  --prune-after K --prune-keep F) trains K epochs on every image, scores
  them all once (a forward pass: about a third of a training pass) and
  trains the remaining epochs on the kept share. A distilled run adds its
  teacher's 10 served views of every image, once (the teacher's own
  training is not counted: a retraining run's teacher is the model
  already served)."""
  n, epochs = settings['train_images'], settings['epochs']
  after = settings.get('prune_after', 0)
  if settings.get('distill_from'):
    return n * (epochs + DISTILL_VIEWS / 3)
  if not after:
    return float(n * epochs)
  return n * (after + 1 / 3) + n * settings['prune_keep'] * (epochs - after)


def cropped_flops(model, size: int, pool_padding: str) -> float:
  """Forward FLOPs per image of `model` on size x size crops (recipes.py
  --crop-epochs): each conv's map shrinks with the input (24 x 24 runs the
  blocks at 24, 12, 6 where 28 x 28 runs them at 28, 14, 7), the dense
  layers after the last pooling stay as they are."""
  full, small, sides = features.IMAGE_SIZE, size, {}
  while full >= 1 and full not in sides:
    sides[full] = small
    full, small = (config.pooled(full, pool_padding),
                   config.pooled(small, pool_padding))
  return float(onednn.forward_flops(model, sides))


def training_flops(settings: Dict) -> float:
  """Forward FLOPs per image x the images trained on over all epochs; a
  cropped run's first epochs at its crops' FLOPs."""
  cfg = ModelConfig.from_dict({n: settings[n] for n in ModelConfig().to_dict()
                               if n in settings})
  model = model_lib.build_model(cfg)
  flops = float(onednn.forward_flops(model))
  crop_epochs = settings.get('crop_epochs', 0)
  if not crop_epochs:
    return flops * image_epochs(settings)
  small = cropped_flops(model, settings['crop_size'], cfg.pool_padding)
  return settings['train_images'] * (
      small * crop_epochs + flops * (settings['epochs'] - crop_epochs))


def verdict(gains: List[float], compute: float = 1.0,
            min_gain: float = MIN_MEAN_GAIN) -> str:
  """The rule on one candidate's per-seed gains (points, served views) at
  `compute` times the default's training compute: 'meets the rule', 'fails
  the rule', or, while seeds are missing and the rule can still be met,
  'open' with the gain each missing seed would need; above BUDGET_COMPUTE,
  'over the budget' first (never a default), the accuracy verdict after; at
  most CHEAPER_COMPUTE, 'cheaper' and the tie rule (_cheaper_verdict).
  `min_gain`: the mean gain the rule asks (a search may fix a stricter one
  before it starts)."""
  if cheaper(compute):
    return _cheaper_verdict(gains, compute)
  by_accuracy = _accuracy_verdict(gains, min_gain)
  if over_budget(compute):
    return (f'over the budget ({compute:.2f}x the training compute); by '
            f'accuracy alone: {by_accuracy}')
  return by_accuracy


def over_budget(compute: float) -> bool:
  return compute > BUDGET_COMPUTE


def cheaper(compute: float) -> bool:
  return compute <= CHEAPER_COMPUTE


def _cheaper_verdict(gains: List[float], compute: float) -> str:
  """A cheaper candidate needs no gain, only no loss beyond the margin: a
  mean of at least -MIN_MEAN_GAIN over SEEDS_NEEDED seeds."""
  prefix = f'cheaper ({compute:.2f}x the training compute): '
  missing = SEEDS_NEEDED - len(gains)
  if missing <= 0:
    tied = np.mean(gains) >= -MIN_MEAN_GAIN
    return prefix + ('meets the rule' if tied else 'fails the rule')
  needed = (-MIN_MEAN_GAIN * SEEDS_NEEDED - sum(gains)) / missing
  return prefix + f'open: needs {_points(needed)} on each missing seed'


def _points(value: float) -> str:
  """+0.15, and +0.00 rather than -0.00 for a value that rounds to 0."""
  return f'{round(value, 2) + 0.0:+.2f}'


def _accuracy_verdict(gains: List[float], min_gain: float) -> str:
  ups = sum(g > 0 for g in gains)
  missing = SEEDS_NEEDED - len(gains)
  if missing <= 0:
    met = np.mean(gains) >= min_gain and ups >= UPS_NEEDED
    return 'meets the rule' if met else 'fails the rule'
  if ups + missing < UPS_NEEDED:
    return 'fails the rule'
  needed = (min_gain * SEEDS_NEEDED - sum(gains)) / missing
  return f'open: needs {_points(needed)} on each missing seed'


def compare(paths: List[str], baseline: Optional[Dict] = None,
            min_gain: float = MIN_MEAN_GAIN) -> Dict:
  """Per-seed gains of every candidate over the default's runs; `baseline`
  overrides the default's knobs (e.g. {'epochs': 14}: the default at
  another schedule)."""
  groups = collections.defaultdict(dict)  # settings as JSON -> seed -> runs
  for path in sorted(paths):
    settings, seed, accuracies = _run_settings(path)
    groups[_key(settings)][seed] = accuracies
  settings_of = {key: json.loads(key) for key in groups}
  default = {**ModelConfig().to_dict(), **(baseline or {})}
  default.pop('seed')
  # The default trained as the Trainer trains it: no recipes.py prototype
  # (mixup, clean final epochs, pruning, crops, distillation) on top.
  default.update(mixup_alpha=0.0, clean_final_epochs=0, prune_after=0,
                 prune_keep=1.0, crop_epochs=0, crop_size=None,
                 distill_from=None, distill_weight=None)
  baselines = [k for k, s in settings_of.items()
               if {n: s[n] for n in default} == default]
  if not baselines:
    changed = f'with {json.dumps(baseline)} ' if baseline else ''
    raise ValueError(f'no run of the default ModelConfig() {changed}among '
                     'the files: nothing to compare with')
  # The most-seeded default wins if it ran with several training sets.
  baseline_key = max(baselines, key=lambda k: len(groups[k]))
  base_settings, base = settings_of[baseline_key], groups[baseline_key]
  base_flops = training_flops(base_settings)
  candidates = []
  for key, runs in groups.items():
    if key == baseline_key:
      continue
    changed = {n: v for n, v in settings_of[key].items()
               if base_settings.get(n) != v}
    seeds = sorted(s for s in runs if s in base)
    if not seeds:
      continue
    gains = {view: [100 * (runs[s][view] - base[s][view]) for s in seeds]
             for view in VIEWS}
    served = gains[SERVED]
    compute = training_flops(settings_of[key]) / base_flops
    candidates.append({
        'changed': changed,
        'seeds': seeds,
        'gain_points': gains,
        'mean_gain_points': {v: float(np.mean(g)) for v, g in gains.items()},
        'up_in': sum(g > 0 for g in served),
        'paired_t_p': (float(stats.ttest_rel(
            [runs[s][SERVED] for s in seeds],
            [base[s][SERVED] for s in seeds]).pvalue)
                       if len(seeds) >= 3 else None),
        'relative_compute': compute,
        'verdict': verdict(served, compute, min_gain),
    })
  candidates.sort(key=lambda c: c['mean_gain_points'][SERVED])
  return {'baseline': {'seeds': sorted(base), 'overrides': baseline or {},
                       SERVED: {s: base[s][SERVED] for s in sorted(base)}},
          'rule': {'min_mean_gain_points': min_gain,
                   'seeds': SEEDS_NEEDED, 'up_in_at_least': UPS_NEEDED,
                   'cheaper_at_most_compute': CHEAPER_COMPUTE,
                   'cheaper_min_mean_gain_points': -MIN_MEAN_GAIN},
          'candidates': candidates}


def _overrides(result: Dict) -> str:
  """' (epochs=14)' for a search against the default at other settings."""
  overrides = result['baseline'].get('overrides')
  return f' ({_label(overrides)})' if overrides else ''


def _label(changed: Dict) -> str:
  return ', '.join(f'{k}={v}' for k, v in sorted(changed.items()))


def _short(candidate: Dict) -> str:
  """The verdict as the chart's row label has room for it."""
  compute = candidate['relative_compute']
  if over_budget(compute):
    return f'over the budget ({compute:.2f}x compute)'
  return candidate['verdict'].replace(' the training compute', '').replace(
      ' on each missing seed', ' each')


def _color(candidate: Dict) -> str:
  compute = candidate['relative_compute']
  return ('tab:green' if candidate['verdict'].endswith('meets the rule') else
          'tab:orange' if over_budget(compute) else
          'tab:purple' if cheaper(compute) else 'tab:blue')


def plot(result: Dict, path: str) -> None:
  """One row per candidate: a dot per seed, a bar for the mean (served
  views), the rule's line and a single run's standard error shaded."""
  candidates = result['candidates']
  min_gain = result['rule']['min_mean_gain_points']
  fig, ax = plt.subplots(figsize=(12, 0.6 * len(candidates) + 2))
  ax.axvspan(-ONE_RUN_SE, ONE_RUN_SE, color='0.92',
             label='± one run\'s standard error')
  ax.axvline(0, color='0.4', lw=1)
  ax.axvline(min_gain, color='tab:green', ls='--', lw=1,
             label=f'rule: mean ≥ +{min_gain:g}, up in '
                   f'{UPS_NEEDED} of {SEEDS_NEEDED} seeds')
  ax.axvline(-MIN_MEAN_GAIN, color='tab:purple', ls=':', lw=1,
             label=f'cheaper (≤ {CHEAPER_COMPUTE}x compute): mean ≥ '
                   f'-{MIN_MEAN_GAIN} over {SEEDS_NEEDED} seeds')
  for row, c in enumerate(candidates):
    gains = c['gain_points'][SERVED]
    ax.barh(row, c['mean_gain_points'][SERVED], height=0.5, alpha=0.35,
            color=_color(c))
    ax.scatter(gains, [row] * len(gains), s=18, color='k', zorder=3)
  ax.set_yticks(range(len(candidates)))
  ax.set_yticklabels([f"{_label(c['changed'])}\n{len(c['seeds'])} seed"
                      f"{'s' if len(c['seeds']) > 1 else ''}: {_short(c)}"
                      for c in candidates], fontsize=7)
  ax.set_xlabel('change in eval accuracy, served 10-view TTA\n(points; '
                'dots: seeds, bars: means)', fontsize=9)
  ax.set_title('Candidates against the default'
               f'{_overrides(result)}, seed by seed', fontsize=10)
  handles, _ = ax.get_legend_handles_labels()
  handles.append(matplotlib.patches.Patch(
      color='tab:orange', alpha=0.35,
      label=f'over the budget: > {BUDGET_COMPUTE}x the default\'s training '
            'compute'))
  handles.append(matplotlib.patches.Patch(
      color='tab:purple', alpha=0.35,
      label=f'cheaper: ≤ {CHEAPER_COMPUTE}x, judged as a tie'))
  # Beside the axes: a search's dots may sit anywhere on them.
  ax.legend(handles=handles, loc='upper left', bbox_to_anchor=(1.01, 1),
            fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=120, bbox_inches='tight')
  plt.close(fig)


def plot_cost(result: Dict, path: str) -> None:
  """Each candidate's mean change (served views; the bar spans its seeds)
  against its training compute relative to the default's: where a cheaper
  network would have to sit to buy issue 10's minutes."""
  min_gain = result['rule']['min_mean_gain_points']
  fig, ax = plt.subplots(figsize=(9, 5.5))
  right = 1.1 * max([BUDGET_COMPUTE] + [c['relative_compute']
                                        for c in result['candidates']])
  ax.axvspan(0, CHEAPER_COMPUTE, color='tab:purple', alpha=0.08,
             label=f'cheaper (≤ {CHEAPER_COMPUTE}x): mean ≥ -{MIN_MEAN_GAIN}')
  ax.axvspan(BUDGET_COMPUTE, right, color='tab:orange', alpha=0.10,
             label=f'over the budget (> {BUDGET_COMPUTE}x)')
  ax.axhspan(-ONE_RUN_SE, ONE_RUN_SE, color='0.92', zorder=0,
             label='± one run\'s standard error')
  ax.axhline(min_gain, color='tab:green', ls='--', lw=1,
             label=f'rule: mean ≥ +{min_gain:g}, up in {UPS_NEEDED} of '
                   f'{SEEDS_NEEDED} seeds')
  ax.axhline(-MIN_MEAN_GAIN, color='tab:purple', ls=':', lw=1)
  ax.scatter([1.0], [0.0], marker='*', s=160, color='k', zorder=4,
             label='the default')
  for c in result['candidates']:
    gains = c['gain_points'][SERVED]
    mean, x = c['mean_gain_points'][SERVED], c['relative_compute']
    ax.errorbar(x, mean, yerr=[[mean - min(gains)], [max(gains) - mean]],
                fmt='o', ms=5, capsize=2, lw=1, zorder=3, color=_color(c))
    if not 0.97 < x < 1.05:  # the crowd of free changes at 1x: see the other chart
      ax.annotate(_label(c['changed']), (x, mean), fontsize=6,
                  xytext=(4, -3), textcoords='offset points')
  ax.set_xlim(0, right)
  ax.set_xlabel('training compute relative to the default (forward FLOPs '
                '× images, summed over epochs)', fontsize=9)
  ax.set_ylabel('change in eval accuracy,\nserved 10-view TTA (points)',
                fontsize=9)
  ax.set_title('Accuracy against cost: every candidate of the search'
               f'{_overrides(result)} (bars span its seeds)', fontsize=10)
  ax.legend(loc='lower right', fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--files', default=os.path.join(
      RESULTS, 'recipes-2026-12-0[67]-*.json'),
                 help='glob of benchmarks/recipes.py results files')
  p.add_argument('--output', default=os.path.join(RESULTS,
                                                  'recipe_search.json'))
  p.add_argument('--baseline-param', action='append', default=[],
                 help='KEY=JSON: the baseline is the default with this knob '
                      'changed (e.g. epochs=14: a search at that schedule)')
  p.add_argument('--min-gain', type=float, default=MIN_MEAN_GAIN,
                 help='the mean gain (points, served views) the rule asks '
                      'over four seeds; fix it before the search')
  args = p.parse_args(argv)
  try:
    baseline = options.model_overrides(args.baseline_param)
  except options.UsageError as e:
    p.error(str(e))
  paths = glob.glob(args.files)
  if not paths:
    p.error(f'no results files match {args.files}')
  try:
    result = compare(paths, baseline, args.min_gain)
  except ValueError as e:
    p.error(str(e))
  for c in result['candidates']:
    gains = ' / '.join(f'{g:+.2f}' for g in c['gain_points'][SERVED])
    print(f"{_label(c['changed']):45s} seeds {c['seeds']}: {gains} "
          f"(mean {c['mean_gain_points'][SERVED]:+.2f}, up in {c['up_in']}, "
          f"{c['relative_compute']:.2f}x compute): "
          f"{c['verdict']}")
  with open(args.output, 'w') as f:
    json.dump(result, f, indent=1)
  png = os.path.splitext(args.output)[0] + '.png'
  plot(result, png)
  cost_png = os.path.splitext(args.output)[0] + '_cost.png'
  plot_cost(result, cost_png)
  print(f'wrote {args.output}, {png} and {cost_png}')
  return 0


if __name__ == '__main__':
  raise SystemExit(main())
