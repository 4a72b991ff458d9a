"""Imports go one way: commands -> library -> models, with no cycles.

A small AST walk over the project's packages (every import, including those
inside functions: a lazy import still makes a dependency). Two rules:
- no import cycle between the project's modules;
- no module outside the command layer imports a command module (`fmnist.*`,
  or any `cli.py`).
Plus the layer order docs/architecture.md draws: models <- pipeline <-
serving <- monitoring <- fmnist.
"""

import ast
import os
from typing import Dict, List, Set

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ('models', 'pipeline', 'serving', 'monitoring', 'fmnist')
# Lower layers never import higher ones (index = layer).
LAYERS = ('models', 'pipeline', 'serving', 'monitoring', 'fmnist')
COMMAND_PACKAGE = 'fmnist'


def module_files(root: str, packages=PACKAGES) -> Dict[str, str]:
  """Dotted module name -> file, for every .py file under `packages`."""
  modules = {}
  for package in packages:
    for directory, _, files in os.walk(os.path.join(root, package)):
      for name in files:
        if not name.endswith('.py'):
          continue
        path = os.path.join(directory, name)
        parts = os.path.relpath(path, root)[:-len('.py')].split(os.sep)
        if parts[-1] == '__init__':
          parts = parts[:-1]
        modules['.'.join(parts)] = path
  return modules


def _resolve(name: str, modules: Set[str]) -> str:
  """The project module `name` refers to (longest known prefix), or ''."""
  parts = name.split('.')
  while parts:
    candidate = '.'.join(parts)
    if candidate in modules:
      return candidate
    parts.pop()
  return ''


def import_graph(root: str, packages=PACKAGES) -> Dict[str, Set[str]]:
  """Module -> the project modules it imports (anywhere in the file)."""
  files = module_files(root, packages)
  names = set(files)
  graph = {}
  for module, path in files.items():
    with open(path, encoding='utf-8') as f:
      tree = ast.parse(f.read(), path)
    is_package = path.endswith('__init__.py')
    edges = set()
    for node in ast.walk(tree):
      targets: List[str] = []
      if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
      elif isinstance(node, ast.ImportFrom):
        base = node.module or ''
        if node.level:  # relative import
          anchor = module.split('.')
          anchor = anchor[:len(anchor) - node.level + (1 if is_package else 0)]
          base = '.'.join(anchor + ([base] if base else []))
        # `from pkg import mod` depends on the module pkg.mod (the package
        # itself is imported on the way, as for any submodule); `from mod
        # import name` on mod.
        targets = [f'{base}.{alias.name}' if f'{base}.{alias.name}' in names
                   else base for alias in node.names]
      for target in targets:
        resolved = _resolve(target, names)
        if resolved and resolved != module:
          edges.add(resolved)
    graph[module] = edges
  return graph


def find_cycle(graph: Dict[str, Set[str]]) -> List[str]:
  """One import cycle as [a, b, ..., a], or [] if there is none."""
  state: Dict[str, int] = {}  # 1: on the current path, 2: done
  path: List[str] = []

  def visit(node: str) -> List[str]:
    state[node] = 1
    path.append(node)
    for nxt in sorted(graph.get(node, ())):
      if state.get(nxt) == 1:
        return path[path.index(nxt):] + [nxt]
      if nxt not in state:
        cycle = visit(nxt)
        if cycle:
          return cycle
    path.pop()
    state[node] = 2
    return []

  for node in sorted(graph):
    if node not in state:
      cycle = visit(node)
      if cycle:
        return cycle
  return []


def is_command(module: str) -> bool:
  return (module.split('.')[0] == COMMAND_PACKAGE or
          module.rsplit('.', 1)[-1] == 'cli')


def command_imports(graph: Dict[str, Set[str]]) -> List[str]:
  """`library -> command` edges, which must not exist."""
  return sorted(f'{src} -> {dst}' for src, dsts in graph.items()
                for dst in dsts if is_command(dst) and not is_command(src))


def upward_imports(graph: Dict[str, Set[str]]) -> List[str]:
  """Edges from a lower layer to a higher one."""
  rank = {name: i for i, name in enumerate(LAYERS)}
  return sorted(f'{src} -> {dst}' for src, dsts in graph.items()
                for dst in dsts
                if rank[dst.split('.')[0]] > rank[src.split('.')[0]])


@pytest.fixture(scope='module')
def graph():
  return import_graph(ROOT)


def test_the_walk_sees_the_project(graph):
  assert {'fmnist.cli', 'pipeline.pipeline', 'monitoring.retrain',
          'serving.app', 'models.trainer'} <= set(graph)
  # Function-level imports count: the command imports the runner lazily.
  assert 'pipeline.local_runner' in graph['fmnist.commands.pipeline']
  assert 'pipeline.configs' in graph['pipeline.local_runner']


def test_no_import_cycles(graph):
  assert find_cycle(graph) == []


def test_only_commands_import_commands(graph):
  assert command_imports(graph) == []


def test_imports_go_down_the_layers(graph):
  assert upward_imports(graph) == []


def _write(root, files):
  for path, text in files.items():
    full = root / path
    full.parent.mkdir(parents=True, exist_ok=True)
    full.write_text(text)


def test_the_checks_fail_on_a_cycle_and_on_a_library_importing_a_command(
    tmp_path):
  _write(tmp_path, {
      'pipeline/__init__.py': '',
      'pipeline/a.py': 'from pipeline import b\n',
      # A lazy import still closes the cycle.
      'pipeline/b.py': 'def f():\n  from pipeline import a\n',
      'monitoring/__init__.py': '',
      'monitoring/retrain.py': 'from fmnist import cli\n',
      'monitoring/cli.py': '',
      'monitoring/job.py': 'from . import cli\n',
      'fmnist/__init__.py': '',
      'fmnist/cli.py': 'import monitoring.job\n',
  })
  graph = import_graph(str(tmp_path), ('pipeline', 'monitoring', 'fmnist'))
  assert find_cycle(graph) in (['pipeline.a', 'pipeline.b', 'pipeline.a'],
                               ['pipeline.b', 'pipeline.a', 'pipeline.b'])
  assert command_imports(graph) == ['monitoring.job -> monitoring.cli',
                                    'monitoring.retrain -> fmnist.cli']
  assert upward_imports({'pipeline.a': {'monitoring.retrain'}}) == [
      'pipeline.a -> monitoring.retrain']
