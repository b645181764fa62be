"""Structure rules of the `hgjax` package, checked on its source with `ast` (nothing is imported).

1. No import cycles among the modules of `hgjax/`. Every import statement counts, also the ones
   inside functions: a lazy import still ties the two modules together.
2. No module of `hgjax/` imports `experiments` (the configs depend on the library, not the
   other way round).
3. The model kind is compared only in the method table `hgjax/methods/__init__.py`.
4. The dataset name is compared only in the dataset table `hgjax/datasets/__init__.py`.

Each rule also has a control test that runs the same checker on small inline sources and
asserts that violations are flagged and harmless code is not, so the checks demonstrably fail.
"""

import ast
import textwrap
from pathlib import Path

HGJAX = Path(__file__).resolve().parents[1] / 'hgjax'
METHOD_TABLE = 'methods/__init__.py'  # relative to the package root
DATASET_TABLE = 'datasets/__init__.py'
COMPARE_OPS = (ast.Eq, ast.NotEq, ast.In, ast.NotIn, ast.Is, ast.IsNot)


# ---------------------------------------------------------------------------- package discovery


def package_modules(root: Path) -> dict[str, Path]:
  """Returns {dotted module name: source file} for every module and package under `root`.

  The package itself is named after the folder (`root.name`); a package maps to its
  `__init__.py`, a folder of Python files without one (namespace package) to the folder.
  """
  modules: dict[str, Path] = {}
  for path in sorted(root.rglob('*.py')):
    rel = path.relative_to(root)
    if '__pycache__' in rel.parts:
      continue
    parts = [root.name, *rel.parts[:-1]]
    if rel.name != '__init__.py':
      parts.append(rel.stem)
    modules['.'.join(parts)] = path
    for depth in range(1, len(rel.parts)):  # the folders above it are packages too
      name = '.'.join([root.name, *rel.parts[:depth]])
      modules.setdefault(name, root.joinpath(*rel.parts[:depth]))
  modules.setdefault(root.name, root)
  return modules


def parse(path: Path) -> ast.Module:
  """Returns the syntax tree of the file at `path` (an empty module for a namespace folder)."""
  if path.is_dir():
    return ast.Module(body=[], type_ignores=[])
  return ast.parse(path.read_text(encoding='utf-8'), filename=str(path))


def table_keys(path: Path, name: str) -> frozenset[str]:
  """The string keys of the module-level dict literal `name = {...}` (annotated or not) in the
  module at `path`: the method and dataset tables, read without importing hgjax."""
  for node in parse(path).body:
    target = node.target if isinstance(node, ast.AnnAssign) else (
        node.targets[0] if isinstance(node, ast.Assign) else None)
    if isinstance(target, ast.Name) and target.id == name and isinstance(node.value, ast.Dict):
      return frozenset(k.value for k in node.value.keys if isinstance(k, ast.Constant))
  raise AssertionError(f'{path}: no dict literal {name} = {{...}}')


MODEL_KINDS = table_keys(HGJAX / METHOD_TABLE, 'METHODS')   # config.model.kind values
DATASET_NAMES = table_keys(HGJAX / DATASET_TABLE, 'DATASETS')


def is_package(path: Path) -> bool:
  """Returns whether the module at `path` (from `package_modules`) is a package."""
  return path.is_dir() or path.name == '__init__.py'


# ------------------------------------------------------------------------------- import cycles


def _existing(name: str, modules) -> str | None:
  """Returns the longest dotted prefix of `name` that is in `modules`, or None."""
  parts = name.split('.')
  while parts:
    candidate = '.'.join(parts)
    if candidate in modules:
      return candidate
    parts.pop()
  return None


def module_imports(tree: ast.AST, module: str, package: bool, modules) -> dict[str, int]:
  """Returns {imported module: line of its first import} for the imports of `tree` that resolve
  to one of `modules` (names of the same top-level package as `module`).

  Every import statement counts, at any nesting level. `from p import x` resolves to `p.x` when
  that is a module or package, else to `p`; `import p.q` to `p.q`; relative imports are resolved
  against `module` (a package when `package`). No edge is added to the parent packages whose
  `__init__` Python runs on the way.
  """
  top = module.split('.')[0]
  own_package = module if package else module.rpartition('.')[0]
  found: dict[str, int] = {}

  def add(name: str | None, line: int):
    target = _existing(name, modules) if name else None
    if target is not None and target not in found:
      found[target] = line

  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for alias in node.names:
        if alias.name.split('.')[0] == top:
          add(alias.name, node.lineno)
    elif isinstance(node, ast.ImportFrom):
      if node.level:
        parts = own_package.split('.')
        if node.level - 1 >= len(parts):
          continue  # beyond the top-level package: not ours
        base = '.'.join(parts[:len(parts) - (node.level - 1)])
        if node.module:
          base = f'{base}.{node.module}'
      else:
        base = node.module or ''
        if base.split('.')[0] != top:
          continue
      for alias in node.names:
        candidate = f'{base}.{alias.name}'
        add(candidate if alias.name != '*' and candidate in modules else base, node.lineno)
  return found


def import_graph(root: Path) -> dict[str, dict[str, int]]:
  """Returns {module: {imported module of the package: line of the import}} for the package at
  `root`, with every module of the package as a key.
  """
  modules = package_modules(root)
  return {name: module_imports(parse(path), name, is_package(path), modules)
          for name, path in modules.items()}


def strongly_connected(graph) -> list[list[str]]:
  """Returns the strongly connected components of `graph` ({node: successors}), each sorted,
  with Tarjan's algorithm (iterative). Successors that are not keys are ignored.
  """
  index: dict[str, int] = {}
  low: dict[str, int] = {}
  stack: list[str] = []
  on_stack: set[str] = set()
  components = []
  for start in sorted(graph):
    if start in index:
      continue
    work = [(start, iter(sorted(graph[start])))]
    index[start] = low[start] = len(index)
    stack.append(start)
    on_stack.add(start)
    while work:
      node, successors = work[-1]
      for succ in successors:
        if succ not in graph:
          continue
        if succ not in index:
          index[succ] = low[succ] = len(index)
          stack.append(succ)
          on_stack.add(succ)
          work.append((succ, iter(sorted(graph[succ]))))
          break
        if succ in on_stack:
          low[node] = min(low[node], index[succ])
      else:
        work.pop()
        if work:
          parent = work[-1][0]
          low[parent] = min(low[parent], low[node])
        if low[node] == index[node]:
          component = []
          while True:
            member = stack.pop()
            on_stack.discard(member)
            component.append(member)
            if member == node:
              break
          components.append(sorted(component))
  return components


def find_cycles(graph) -> list[list[str]]:
  """Returns one cycle per cyclic strongly connected component of `graph` ({node:
  successors}), sorted: the shortest chain of nodes that starts and ends at the component's
  first node (`['a', 'b', 'a']`). A node that imports itself is the chain `['a', 'a']`.
  """
  cycles = []
  for component in strongly_connected(graph):
    start = component[0]
    if len(component) == 1 and start not in graph[start]:
      continue
    members = set(component)
    previous = {start: None}
    frontier = [start]
    end = None
    while frontier and end is None:  # breadth first: the shortest way back to `start`
      following = []
      for node in frontier:
        for succ in sorted(graph[node]):
          if succ == start:
            end = node
            break
          if succ in members and succ not in previous:
            previous[succ] = node
            following.append(succ)
        if end is not None:
          break
      frontier = following
    path = []
    node = end
    while node is not None:
      path.append(node)
      node = previous[node]
    cycles.append([*reversed(path), start])
  return sorted(cycles)


def describe_cycle(cycle: list[str], graph, root: Path) -> str:
  """Returns the chain `a -> b -> a` followed by where each import of it is written."""
  modules = package_modules(root)
  where = []
  for source, target in zip(cycle, cycle[1:], strict=False):
    rel = modules[source].relative_to(root.parent)
    where.append(f'{rel}:{graph[source][target]} imports {target}')
  return ' -> '.join(cycle) + '  (' + '; '.join(where) + ')'


# ---------------------------------------------------------------------------- experiments rule


def experiments_imports(tree: ast.AST) -> list[tuple[int, str]]:
  """Returns (line, source text) of every import in `tree`, at any nesting level, whose
  top-level package is `experiments`, sorted by line.
  """
  hits = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      names = [node.module]
    else:
      continue
    if any(name.split('.')[0] == 'experiments' for name in names):
      hits.append((node.lineno, ast.unparse(node)))
  return sorted(hits)


# ------------------------------------------------------------------- model kind / dataset name


def _compare_operands(node: ast.Compare) -> list[ast.expr] | None:
  """Returns the operands of `node` when it uses one of COMPARE_OPS, else None."""
  if not any(isinstance(op, COMPARE_OPS) for op in node.ops):
    return None
  return [node.left, *node.comparators]


def _constants(node: ast.AST, known: frozenset[str]) -> set[str]:
  """Returns the strings of `known` that `node` holds: a string constant, or a tuple, list or set
  of them.
  """
  elements = node.elts if isinstance(node, ast.Tuple | ast.List | ast.Set) else [node]
  return {e.value for e in elements
          if isinstance(e, ast.Constant) and isinstance(e.value, str)} & known


def _pattern_constants(pattern: ast.AST, known: frozenset[str]) -> set[str]:
  """Returns the strings of `known` that occur as values in the match `pattern`."""
  found = set()
  for node in ast.walk(pattern):
    if isinstance(node, ast.MatchValue):
      found |= _constants(node.value, known)
  return found


def is_kind(node: ast.AST) -> bool:
  """Returns whether `node` reads a model kind for certain: `x.kind` or `x['kind']`."""
  if isinstance(node, ast.Attribute):
    return node.attr == 'kind'
  return (isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant)
          and node.slice.value == 'kind')


def _is_bare_kind(node: ast.AST) -> bool:
  """Returns whether `node` is the bare name `kind` (a model kind if compared with one)."""
  return isinstance(node, ast.Name) and node.id == 'kind'


def kind_comparisons(tree: ast.AST) -> list[tuple[int, str]]:
  """Returns (line, source text) of every comparison (==, !=, in, not in, is, is not) on a model
  kind in `tree`, and of every `match` on one, sorted by line.

  An operand `x.kind` or `x['kind']` always counts; a bare `kind` when it is compared with (or
  matched against) a known model kind, since local variables named `kind` also hold other kinds
  (figure strokes, shapes).
  """
  hits = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Compare):
      operands = _compare_operands(node)
      if not operands:
        continue
      constants = set().union(*(_constants(o, MODEL_KINDS) for o in operands))
      if any(is_kind(o) or (constants and _is_bare_kind(o)) for o in operands):
        hits.append((node.lineno, ast.unparse(node)))
    elif isinstance(node, ast.Match):
      subject = node.subject
      constants = set().union(*(_pattern_constants(c.pattern, MODEL_KINDS) for c in node.cases))
      if is_kind(subject) or (constants and _is_bare_kind(subject)):
        hits.append((node.lineno, f'match {ast.unparse(subject)}:'))
  return sorted(hits)


def _is_name(node: ast.AST) -> bool:
  """Returns whether `node` is a bare `name` or an attribute `x.name`."""
  return ((isinstance(node, ast.Name) and node.id == 'name')
          or (isinstance(node, ast.Attribute) and node.attr == 'name'))


def dataset_name_comparisons(tree: ast.AST) -> list[tuple[int, str]]:
  """Returns (line, source text) of every comparison on a dataset name in `tree`: an operand
  whose text ends with `dataset.name`, or a bare `name` / attribute `x.name` compared with a
  known dataset name (alone or in a tuple, list or set); `match` statements alike. Sorted by
  line.
  """
  hits = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Compare):
      operands = _compare_operands(node)
      if not operands:
        continue
      by_text = any(ast.unparse(o).endswith('dataset.name') for o in operands)
      constants = set().union(*(_constants(o, DATASET_NAMES) for o in operands))
      if by_text or (constants and any(_is_name(o) for o in operands)):
        hits.append((node.lineno, ast.unparse(node)))
    elif isinstance(node, ast.Match):
      subject = node.subject
      constants = set().union(*(_pattern_constants(c.pattern, DATASET_NAMES) for c in node.cases))
      if ast.unparse(subject).endswith('dataset.name') or (constants and _is_name(subject)):
        hits.append((node.lineno, f'match {ast.unparse(subject)}:'))
  return sorted(hits)


def violations(root: Path, checker, allowed: str | None = None) -> list[str]:
  """Returns `path:line: source` for every hit of `checker(tree)` in the files of the package at
  `root`, except the file `allowed` (relative to `root`).
  """
  found = []
  for path in package_modules(root).values():
    if path.is_dir() or (allowed is not None and path == root / allowed):
      continue
    for line, text in checker(parse(path)):
      found.append(f'{path.relative_to(root.parent)}:{line}: {text}')
  return found


# ------------------------------------------------------------------------ rules on the package


def test_package_is_found():
  assert MODEL_KINDS >= {'shg', 'ae'} and DATASET_NAMES >= {'mpii', 'coco'}
  modules = package_modules(HGJAX)
  assert HGJAX.is_dir(), f'no package at {HGJAX}'
  assert {'hgjax', 'hgjax.train', 'hgjax.datasets'} <= set(modules), sorted(modules)


def test_no_import_cycles():
  graph = import_graph(HGJAX)
  cycles = [describe_cycle(cycle, graph, HGJAX) for cycle in find_cycles(graph)]
  assert not cycles, 'import cycles in hgjax (lazy imports included):\n' + '\n'.join(cycles)


def test_no_experiments_imports():
  found = violations(HGJAX, experiments_imports)
  assert not found, 'hgjax must not import experiments:\n' + '\n'.join(found)


def test_model_kind_compared_only_in_method_table():
  found = violations(HGJAX, kind_comparisons, allowed=METHOD_TABLE)
  assert not found, (f'model kind compared outside hgjax/{METHOD_TABLE}:\n' + '\n'.join(found))


def test_dataset_name_compared_only_in_dataset_table():
  found = violations(HGJAX, dataset_name_comparisons, allowed=DATASET_TABLE)
  assert not found, (f'dataset name compared outside hgjax/{DATASET_TABLE}:\n'
                     + '\n'.join(found))


# ------------------------------------------------------------------------------ control tests


def _tree(source: str) -> ast.Module:
  """Returns the syntax tree of the dedented `source`."""
  return ast.parse(textwrap.dedent(source))


def _write_package(root: Path, files: dict[str, str]):
  """Writes `files` ({path relative to root: source}) under `root`."""
  for rel, source in files.items():
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source), encoding='utf-8')


def test_cycle_check_flags_cycles(tmp_path):
  root = tmp_path / 'hgjax'
  _write_package(root, {
      '__init__.py': '',
      'a.py': 'from hgjax import b\n',
      'b.py': 'def f():\n  from . import a  # lazy, still a cycle\n',
      'c.py': 'import hgjax.sub.d\n',
      'sub/__init__.py': 'from hgjax import k\n',
      'sub/d.py': 'from ..c import helper\n',  # a name of hgjax.c: the edge goes to hgjax.c
      'e.py': 'from hgjax.e import x\n',  # imports itself
      # Harmless: k imports the submodule hgjax.sub.d2, not hgjax.sub (whose __init__ imports
      # k); a name from the package goes to hgjax itself, which imports nothing.
      'k.py': 'from hgjax.sub import d2\nfrom hgjax import version\nimport numpy\n',
      'sub/d2.py': 'import experiments_like\n',
  })
  graph = import_graph(root)
  assert graph['hgjax.k'] == {'hgjax.sub.d2': 1, 'hgjax': 2}
  assert graph['hgjax.sub.d'] == {'hgjax.c': 1}
  assert graph['hgjax.c'] == {'hgjax.sub.d': 1}
  assert find_cycles(graph) == [
      ['hgjax.a', 'hgjax.b', 'hgjax.a'],
      ['hgjax.c', 'hgjax.sub.d', 'hgjax.c'],
      ['hgjax.e', 'hgjax.e'],
  ]
  text = describe_cycle(['hgjax.a', 'hgjax.b', 'hgjax.a'], graph, root)
  assert text.startswith('hgjax.a -> hgjax.b -> hgjax.a  (hgjax/a.py:1 imports hgjax.b; ')


def test_cycle_finder_on_plain_graphs():
  assert find_cycles({'a': {'b'}, 'b': {'c'}, 'c': set()}) == []
  assert find_cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a', 'x'}}) == [['a', 'b', 'c', 'a']]
  # Two cycles through `a` form one component; the shorter one is reported.
  assert find_cycles({'a': {'b', 'c'}, 'b': {'a'}, 'c': {'d'}, 'd': {'a'}}) == [['a', 'b', 'a']]


def test_experiments_check_flags_imports():
  tree = _tree('''
      import experiments
      from experiments import mpii
      import os, experiments.coco_ae as coco
      def f():
        from experiments.defaults import base
      from hgjax import experiments_util
      import experiments_like
      from .experiments import x
  ''')
  assert [line for line, _ in experiments_imports(tree)] == [2, 3, 4, 6]


def test_kind_check_flags_comparisons():
  tree = _tree('''
      if config.model.kind == 'ae':
        pass
      ok = m.kind != 'shg'
      ok = self.config.model.kind in ('ae', 'shg')
      ok = arch['kind'] is not None
      ok = kind == 'shg'
      match config.model.kind:
        case 'ae':
          pass
      ok = kind in ['ae']
      match kind:
        case 'shg':
          pass
      ok = x.kind_of_thing == 'ae'
      ok = config.model.name == 'ae'
      ok = arch['kinds'] == 'ae'
      ok = kinds == 'ae'
      ok = config.model.kind < 3
      build(config.model.kind)
      match config.model.name:
        case 'ae':
          pass
      ok = kind == 'capsule'
      ok = kind == 0
      match kind:
        case 'ellipse':
          pass
  ''')
  assert [line for line, _ in kind_comparisons(tree)] == [2, 4, 5, 6, 7, 8, 11, 12]
  assert kind_comparisons(tree)[0] == (2, "config.model.kind == 'ae'")


def test_dataset_check_flags_comparisons():
  tree = _tree('''
      if config.dataset.name == 'mpii':
        pass
      ok = self.config.dataset.name != 'anything'
      ok = d.name in ('coco', 'synthetic_scenes')
      ok = name == 'synthetic'
      ok = 'coco' == o.name
      match d.name:
        case 'mpii' | 'coco':
          pass
      ok = o.name == 'rmsprop'
      ok = path.parent.name == 'experiments'
      ok = name == last
      ok = d.num_joints == 16
      ok = config.dataset.split == 'mpii'
      match optimizer.name:
        case 'adam':
          pass
  ''')
  assert [line for line, _ in dataset_name_comparisons(tree)] == [2, 4, 5, 6, 7, 8]


def test_table_files_are_exempt(tmp_path):
  root = tmp_path / 'hgjax'
  _write_package(root, {
      '__init__.py': '',
      'methods/__init__.py': "ok = config.model.kind == 'ae'\n",
      'datasets/__init__.py': "ok = config.dataset.name == 'coco'\n",
      'train.py': "ok = config.model.kind == 'ae'\nok = config.dataset.name == 'coco'\n",
  })
  assert violations(root, kind_comparisons, allowed=METHOD_TABLE) == [
      "hgjax/train.py:1: config.model.kind == 'ae'"]
  assert violations(root, dataset_name_comparisons, allowed=DATASET_TABLE) == [
      "hgjax/train.py:2: config.dataset.name == 'coco'"]
