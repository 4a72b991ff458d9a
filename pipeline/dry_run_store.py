"""The dry run's stand-in for Vertex ML Metadata: artifacts of earlier runs.

`pipeline/dry_run.py` runs a compiled PipelineJob spec locally. What Vertex
keeps in its metadata store and the dry run needs again lives in one JSON
file under the dry-run root: every output artifact a task produced (name,
schema title, uri, metadata, in creation order) and each task's cache key
with the artifacts it produced. Resolver tasks are evaluated against it with
the filter syntax the KubeflowV2 compiler writes (`schema_title="tfx.X" AND
state=LIVE AND metadata.K.number_value=N`, `name="..."`): the newest artifact
that matches, as Vertex's resolver returns it.
"""

import dataclasses
import json
import os
import re
from typing import Any, Dict, List, Optional

from pipeline.errors import UserError

RECORD_NAME = 'dry_run_metadata.json'

_CLAUSE_RE = re.compile(
    r'^\s*(?P<field>schema_title|state|name|metadata\.(?P<key>\w+)\.'
    r'(?P<kind>number_value|string_value|bool_value))\s*=\s*(?P<value>.+?)'
    r'\s*$')


class UnsupportedFilter(UserError):
  """A resolver filter this stand-in cannot evaluate faithfully."""


@dataclasses.dataclass(frozen=True)
class Artifact:
  """One artifact as Vertex ML Metadata keeps it (and RuntimeArtifact says)."""
  name: str
  schema_title: str
  uri: str
  metadata: Dict[str, Any]
  run_id: str = ''
  task: str = ''
  state: str = 'LIVE'

  def to_json(self) -> Dict[str, Any]:
    return dataclasses.asdict(self)


def _matches(artifact: Artifact, clause: str) -> bool:
  m = _CLAUSE_RE.match(clause)
  if not m:
    raise UnsupportedFilter(
        f'resolver filter clause {clause.strip()!r} is not one the dry run '
        'can evaluate (schema_title, state, name, metadata.K.number_value/'
        'string_value/bool_value)')
  value = m.group('value')
  if value.startswith('"') and value.endswith('"'):
    value = value[1:-1]
  field = m.group('field')
  if field == 'schema_title':
    return artifact.schema_title == value
  if field == 'state':
    return artifact.state == value
  if field == 'name':
    return artifact.name == value
  actual = artifact.metadata.get(m.group('key'))
  if actual is None:
    return False
  kind = m.group('kind')
  if kind == 'number_value':
    try:
      return float(actual) == float(value)
    except (TypeError, ValueError):
      return False
  if kind == 'bool_value':
    return bool(actual) == (value.lower() == 'true')
  return str(actual) == value


class Store:
  """The JSON record at `<root>/dry_run_metadata.json`; saved after each task."""

  def __init__(self, root: str):
    self.path = os.path.join(root, RECORD_NAME)
    self.artifacts: List[Artifact] = []
    self.cache: Dict[str, Dict[str, List[str]]] = {}
    if os.path.exists(self.path):
      with open(self.path, encoding='utf-8') as f:
        data = json.load(f)
      self.artifacts = [Artifact(**a) for a in data.get('artifacts', [])]
      self.cache = data.get('cache', {})

  def save(self) -> None:
    tmp = self.path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
      json.dump({'artifacts': [a.to_json() for a in self.artifacts],
                 'cache': self.cache}, f, indent=1)
    os.replace(tmp, self.path)

  def add(self, artifacts: List[Artifact]) -> None:
    self.artifacts.extend(artifacts)

  def get(self, name: str) -> Optional[Artifact]:
    for artifact in self.artifacts:
      if artifact.name == name:
        return artifact
    return None

  def latest(self, query: str, before_run: str) -> Optional[Artifact]:
    """The newest artifact of an earlier run that matches `query` (AND-ed)."""
    clauses = [c for c in re.split(r'\s+AND\s+', query) if c.strip()]
    for artifact in reversed(self.artifacts):
      if artifact.run_id == before_run:
        continue
      if all(_matches(artifact, c) for c in clauses):
        return artifact
    return None

  def cached_outputs(self, key: str) -> Optional[Dict[str, List[Artifact]]]:
    """The outputs of an earlier execution with this cache key, if any."""
    entry = self.cache.get(key)
    if entry is None:
      return None
    outputs = {k: [self.get(n) for n in names] for k, names in entry.items()}
    if any(a is None for arts in outputs.values() for a in arts):
      return None
    return outputs

  def remember(self, key: str, outputs: Dict[str, List[Artifact]]) -> None:
    self.cache[key] = {k: [a.name for a in arts] for k, arts in outputs.items()}
