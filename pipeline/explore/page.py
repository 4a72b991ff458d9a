"""The exploration's review files (CSV) and its index.html."""

import csv
import html
from typing import Dict, List, Sequence

import numpy as np
import tensorflow as tf

from models import features
from pipeline import report

MAX_PAIRS = 48       # near-duplicate thumbnail pairs shown
MAX_ISSUES = 60      # label-issue thumbnails shown
DUPLICATES_CSV = 'near_duplicates.csv'
LABEL_ISSUES_CSV = 'label_issues.csv'

STYLE = report.STYLE + (
    '.grid{display:flex;flex-wrap:wrap;gap:8px}.row{display:flex;gap:12px;'
    'flex-wrap:wrap;align-items:flex-start}figure{margin:0;font-size:11px;'
    'text-align:center}.pair{width:180px}.one{width:100px}'
    '.bad{color:#cf222e;font-weight:bold}.row>img{max-width:calc(50% - 6px)}img{max-width:100%}')


def _name(label: int) -> str:
  return features.CLASS_NAMES[int(label)]


def write_csv(path: str, header: Sequence[str], rows: List[Sequence]) -> None:
  with tf.io.gfile.GFile(path, 'w') as f:
    writer = csv.writer(f)
    writer.writerow(header)
    writer.writerows(rows)


def duplicate_rows(pairs, origin, test_labels, train_labels) -> List[list]:
  """One CSV row per pair: where both images are, distance, both labels."""
  rows = []
  for p in pairs:
    split, index = origin[p.train_row]
    a, b = int(test_labels[p.test_index]), int(train_labels[p.train_row])
    rows.append([p.test_index, split, index, f'{p.distance:.4f}',
                 int(p.exact), a, _name(a), b, _name(b), int(a != b)])
  return rows


DUPLICATE_HEADER = ('test_index', 'train_split', 'train_index', 'distance',
                    'exact', 'test_label', 'test_class', 'train_label',
                    'train_class', 'labels_disagree')


def issue_rows(issues, origin, labels) -> List[list]:
  rows = []
  for rank, row in enumerate(issues.rows, 1):
    split, index = origin[row]
    given, suggested = int(labels[row]), issues.suggested(row)
    rows.append([rank, split, index, given, _name(given), suggested,
                 _name(suggested), f'{issues.probs[row, given]:.4f}',
                 f'{issues.probs[row, suggested]:.4f}'])
  return rows


ISSUE_HEADER = ('rank', 'split', 'index', 'given_label', 'given_class',
                'suggested_label', 'suggested_class', 'given_probability',
                'suggested_probability')


def _img(image: np.ndarray, alt: str) -> str:
  return (f'<img src="data:image/png;base64,{report.thumbnail_base64(image)}"'
          f' alt="{html.escape(alt)}">')


def pair_thumbnails(rows, test_images, train_images, pairs) -> str:
  cells = []
  for row, p in zip(rows[:MAX_PAIRS], pairs):
    disagree = row[-1]
    cells.append(
        f'<figure class="pair">{_img(test_images[p.test_index], "test")}'
        f'{_img(train_images[p.train_row], "train")}<figcaption>'
        f'test #{row[0]}: {html.escape(row[6])}<br>{row[1]} #{row[2]}: '
        f'<span class="{"bad" if disagree else ""}">{html.escape(row[8])}'
        f'</span><br>d = {row[3]}{" (exact)" if row[4] else ""}'
        '</figcaption></figure>')
  return f'<div class="grid">{"".join(cells)}</div>'


def issue_thumbnails(rows, images) -> str:
  cells = []
  for row, image in zip(rows[:MAX_ISSUES], images):
    cells.append(
        f'<figure class="one">{_img(image, "flagged image")}<figcaption>'
        f'{row[1]} #{row[2]}<br>given: {html.escape(row[4])} ({row[7]})<br>'
        f'<b>suggested: {html.escape(row[6])}</b> ({row[8]})</figcaption>'
        '</figure>')
  return f'<div class="grid">{"".join(cells)}</div>'


def table(header: Sequence[str], rows: List[Sequence]) -> str:
  head = ''.join(f'<th>{html.escape(str(h))}</th>' for h in header)
  body = ''.join('<tr>' + ''.join(f'<td>{html.escape(str(v))}</td>'
                                  for v in r) + '</tr>' for r in rows)
  return f'<table><tr>{head}</tr>{body}</table>'


def balance_table(counts: Dict[str, np.ndarray]) -> str:
  rows = [[_name(c)] + [f'{counts[s][c]} ({100 * counts[s][c] / max(1, counts[s].sum()):.1f} %)'
                         for s in counts] for c in range(features.NUM_CLASSES)]
  rows.append(['total'] + [str(counts[s].sum()) for s in counts])
  return table(['class'] + list(counts), rows)


def most_similar(matrix: np.ndarray, n: int = 5) -> str:
  pairs = sorted(((matrix[i, j], i, j) for i in range(len(matrix))
                  for j in range(i + 1, len(matrix))), reverse=True)[:n]
  return ', '.join(f'{_name(i)} / {_name(j)} ({s:.2f})' for s, i, j in pairs)
