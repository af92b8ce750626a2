"""No SQL text is assembled from non-constant strings anywhere in the package.

The scan reads every module of ``cqrs/`` with ``ast`` and looks at the SQL
argument of ``text(...)``, ``exec_driver_sql(...)`` and of every
``.execute(...)``/``.executemany(...)``/``.copy(...)`` (SQLAlchemy connections and
sessions, Alembic's ``op``, psycopg connections and cursors). That argument must
not be built at run time from pieces: an f-string with a ``{...}`` field, a ``%``
or ``+`` of strings, or a ``.format``/``.join``/``.replace`` call, nor a local or
module name bound to one. Names and values reach SQL only through
``cqrs.sqlnames`` (identifiers quoted by the dialect, literals rendered by
SQLAlchemy) or as bound parameters.
"""

from __future__ import annotations

import ast
from pathlib import Path

import cqrs

PACKAGE = Path(cqrs.__file__).parent
SINK_FUNCTIONS = {"text"}
SINK_METHODS = {"text", "exec_driver_sql", "execute", "executemany", "copy"}
STRING_METHODS = {"format", "join", "replace"}

# The one module allowed to assemble SQL text: it quotes every identifier through the
# dialect's identifier preparer and renders only int/date/datetime literals.
ALLOWED_MODULES = {"sqlnames.py"}

# Where constant statements are built once, at import, by joining module-level string
# constants (shared fragments such as the event columns, kept once instead of pasted
# into each statement): (module, "<module>" or the builder function called only at
# import with constants). There a piece may be a plain or dotted name (a constant, or
# the builder's parameter) or a call of one with such arguments only (a fragment
# computed from constants, such as ``rows.select_list("events")``); never run-time
# input. Keep the list short.
CONSTANT_BUILDERS = {
    # The append and read statements share their column lists and heads.
    ("store/sql.py", "<module>"),
    ("store/sql.py", "_read_all_page"),  # READ_ALL and READ_ALL_TYPES, at import
    ("store/horizon.py", "<module>"),  # the read horizon expression, shared with reads
    ("store/bulk.py", "<module>"),  # the import's stream heads take the appends' guard
    ("store/no_append.py", "<module>"),  # the mark's name prefix, once for all its SQL
    ("projections/sql.py", "<module>"),  # the batch statements share the event columns
    ("projections/rebuild.py", "<module>"),  # MOVE_PARKED reuses the shard expression
    # The guard functions share their bypass clause (and cqrs_0003 writes them out).
    ("store/guards.py", "<module>"),
    # The frozen first revision (never edited) names its sequence once, as a constant.
    ("migrations/versions/cqrs_0001_event_store.py", "_create_events"),
    # The frozen append-only revision runs its function and trigger constants.
    ("migrations/versions/cqrs_0003_append_only.py", "upgrade"),
}


def _is_sink(call: ast.Call) -> bool:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id in SINK_FUNCTIONS
    return isinstance(func, ast.Attribute) and func.attr in SINK_METHODS


def _constant(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.BinOp):
        return _constant(node.left) and _constant(node.right)
    return isinstance(node, ast.JoinedStr) and all(isinstance(v, ast.Constant) for v in node.values)


def _pieces_are_names(node: ast.expr) -> bool:
    """Whether every run-time piece of ``node`` is a constant, a (dotted) name, or a call
    of a (dotted) name with such arguments only: what a module computes from constants."""
    if isinstance(node, ast.Constant | ast.Name):
        return True
    if isinstance(node, ast.Attribute):
        return _pieces_are_names(node.value)
    if isinstance(node, ast.BinOp):
        return _pieces_are_names(node.left) and _pieces_are_names(node.right)
    if isinstance(node, ast.Call):
        arguments = [*node.args, *(k.value for k in node.keywords)]
        return _pieces_are_names(node.func) and all(_pieces_are_names(a) for a in arguments)
    if isinstance(node, ast.JoinedStr):
        return all(
            isinstance(v, ast.Constant)
            or (isinstance(v, ast.FormattedValue) and _pieces_are_names(v.value))
            for v in node.values
        )
    return False


def _assembled(node: ast.expr) -> bool:
    """Whether ``node`` builds a string at run time from non-constant parts."""
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mod):
        return not _constant(node)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr in STRING_METHODS
    return False


class _Scanner(ast.NodeVisitor):
    def __init__(self, module: str, tree: ast.Module) -> None:
        self.module = module
        self.found: list[str] = []
        self.scopes: list[dict[str, list[ast.expr]]] = [self._bindings(tree)]
        self.names = ["<module>"]

    @staticmethod
    def _bindings(scope: ast.AST) -> dict[str, list[ast.expr]]:
        """Every value assigned to a plain name directly in ``scope`` (not nested defs)."""
        found: dict[str, list[ast.expr]] = {}
        todo = list(ast.iter_child_nodes(scope))
        while todo:
            node = todo.pop()
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        found.setdefault(target.id, []).append(node.value)
            elif (
                isinstance(node, ast.AnnAssign | ast.AugAssign)
                and node.value is not None
                and isinstance(node.target, ast.Name)
            ):
                found.setdefault(node.target.id, []).append(node.value)
            todo.extend(ast.iter_child_nodes(node))
        return found

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.scopes.append(self._bindings(node))
        self.names.append(node.name)
        self.generic_visit(node)
        self.names.pop()
        self.scopes.pop()

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function

    def _dynamic(self, node: ast.expr) -> bool:
        if _assembled(node):
            return True
        if isinstance(node, ast.Name):
            for scope in reversed(self.scopes):
                if node.id in scope:
                    return any(_assembled(value) for value in scope[node.id])
        return False

    def visit_Call(self, node: ast.Call) -> None:
        if _is_sink(node) and node.args:
            sql = node.args[0]
            builder = (self.module, self.names[-1]) in CONSTANT_BUILDERS
            at_import = builder and _pieces_are_names(sql)
            if self._dynamic(sql) and not at_import:
                self.found.append(f"cqrs/{self.module}:{node.lineno}: {ast.unparse(sql)[:90]}")
        self.generic_visit(node)


def scan(root: Path = PACKAGE) -> list[str]:
    found: list[str] = []
    for path in sorted(root.rglob("*.py")):
        module = path.relative_to(root).as_posix()
        if module in ALLOWED_MODULES:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        scanner = _Scanner(module, tree)
        scanner.visit(tree)
        found.extend(scanner.found)
    return found


def test_no_sql_is_assembled_from_strings() -> None:
    found = scan()
    assert not found, (
        "SQL text assembled from non-constant strings; build the statement with SQLAlchemy "
        "constructs or cqrs.sqlnames.statement/render (identifiers quoted, values bound):\n"
        + "\n".join(found)
    )


def _scan_source(tmp_path: Path, source: str) -> list[str]:
    (tmp_path / "mod.py").write_text(source)
    return scan(tmp_path)


def test_the_scan_catches_each_shape(tmp_path: Path) -> None:
    shapes = [
        "def f(c, n):\n    c.execute(text(f'DROP TABLE {n}'))\n",
        "def f(c, n):\n    c.execute(text('DROP TABLE ' + n))\n",
        "def f(c, n):\n    c.execute(text('DROP TABLE %s' % n))\n",
        "def f(c, n):\n    c.exec_driver_sql('DROP TABLE {}'.format(n))\n",
        "def f(cur, n):\n    cur.execute(f'LISTEN {n}')\n",
        "def f(c, n):\n    sql = f'DROP TABLE {n}'\n    c.execute(text(sql))\n",
        "T = 'DROP TABLE __N__'\ndef f(c, n):\n    c.execute(text(T.replace('__N__', n)))\n",
        "def f(cur, q):\n    cur.copy(f'COPY ({q}) TO STDOUT')\n",
    ]
    for source in shapes:
        assert len(_scan_source(tmp_path, source)) == 1, source


def test_the_scan_lets_constants_and_the_helper_through(tmp_path: Path) -> None:
    source = (
        "Q = text('SELECT 1 FROM streams WHERE stream_id = :sid')\n"
        "P = 'SELECT ' + '1'\n"
        "def f(c, n):\n"
        "    c.execute(Q, {'sid': n})\n"
        "    c.execute(text(P))\n"
        "    c.execute(sqlnames.statement(c, 'DROP TABLE {t}', t=n))\n"
        "    c.execute(select(1))\n"
        "    d = {}.copy()\n"
    )
    assert _scan_source(tmp_path, source) == []
