"""A notebook's ``parameters`` cell, read with ``ast``, and ``-p KEY=VALUE`` text converted to the declared types.

papermill's own reader (``inspect_notebook``) drops any line whose annotation holds ``|`` or ``.``, so
``seeds: list[int] | None = None`` would be invisible to it; this module reads the cell as Python instead.
Supported annotations: ``str``, ``int``, ``float``, ``bool``, ``list[T]`` of those, and any of them ``| None``
(or ``Optional[...]``, ``Union[...]``): the types papermill can write into a notebook. A parameter without an
annotation takes the type of its default. The text grammar is the one ``--set`` and ``--grid`` use
(``experiments.core.config``): bools as true/false, yes/no or 1/0, none/null for an optional type, and int lists
with ranges (``seeds=1-5``), the grammar of ``--seeds``.
"""

from __future__ import annotations

import ast
import dataclasses
import io
import json
import tokenize
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..text import is_none_word, parse_int_list, parse_scalar

SCALARS: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool}
LISTS = ("list", "List")


class ParameterError(InputError, ValueError):
    """A ``-p`` value or a parameters cell the kit cannot use; the message names the parameter and the type."""


@dataclasses.dataclass(frozen=True)
class Parameter:
    """One line of a parameters cell: ``name: annotation = default  # help``."""

    name: str
    annotation: str | None  # source text, e.g. "list[int] | None"; None when the line has no annotation
    default: Any  # the default's value (a literal)
    help: str = ""

    @property
    def type_text(self) -> str:
        """The declared type as the user reads it (inferred from the default when there is no annotation)."""
        if self.annotation:
            return self.annotation
        return type(self.default).__name__ if self.default is not None else "any"


def _comments(source: str) -> dict[int, str]:
    """Line number -> text of the comment ending that line."""
    out = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                out[tok.start[0]] = tok.string.lstrip("#").strip()
    except (tokenize.TokenError, IndentationError):
        pass
    return out


def parse_parameters_cell(source: str) -> dict[str, Parameter]:
    """The top-level ``name[: annotation] = literal`` lines of a parameters cell, in order."""
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        raise ParameterError(f"the parameters cell is not valid Python: {err}") from err
    comments = _comments(source)
    out: dict[str, Parameter] = {}
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            name, annotation = node.target.id, ast.unparse(node.annotation)
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, annotation = node.targets[0].id, None
        else:
            continue
        try:
            default = ast.literal_eval(node.value)
        except ValueError as err:
            raise ParameterError(f"parameter {name!r}: the default `{ast.unparse(node.value)}` is not a literal; "
                                 "parameters must be flat literals") from err
        out[name] = Parameter(name, annotation, default, comments.get(node.end_lineno, ""))
    return out


def notebook_parameters(notebook: str | Path) -> dict[str, Parameter]:
    """The parameters the notebook's cell tagged ``parameters`` declares (empty if it has none)."""
    nb = json.loads(Path(notebook).read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            try:
                return parse_parameters_cell(src)
            except ParameterError as err:
                raise ParameterError(f"{Path(notebook).name}: {err}") from None
    return {}


def _alternatives(node: ast.expr) -> list[Any]:
    """An annotation as a list of alternatives: a scalar type, ``(list, item type)``, or None."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _alternatives(node.left) + _alternatives(node.right)
    if (isinstance(node, ast.Constant) and node.value is None) or (isinstance(node, ast.Name) and node.id == "None"):
        return [None]
    if isinstance(node, ast.Name) and node.id in SCALARS:
        return [SCALARS[node.id]]
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        outer = node.value.id
        args = list(node.slice.elts) if isinstance(node.slice, ast.Tuple) else [node.slice]
        if outer == "Optional" and len(args) == 1:
            return _alternatives(args[0]) + [None]
        if outer == "Union":
            return [alt for a in args for alt in _alternatives(a)]
        if outer in LISTS and len(args) == 1 and isinstance(args[0], ast.Name) and args[0].id in SCALARS:
            return [(list, SCALARS[args[0].id])]
    raise ParameterError(f"annotation `{ast.unparse(node)}` is not supported; use str, int, float, bool or list[T] "
                         "of those, optionally `| None`")


def declared_types(param: Parameter) -> list[Any]:
    """The alternatives ``convert`` tries for ``param`` (from its annotation, else from its default's type)."""
    if param.annotation is not None:
        try:
            return _alternatives(ast.parse(param.annotation, mode="eval").body)
        except SyntaxError as err:
            raise ParameterError(f"parameter {param.name!r}: cannot read annotation {param.annotation!r}") from err
    d = param.default
    if isinstance(d, list) and d and len({type(v) for v in d}) == 1 and type(d[0]) in SCALARS.values():
        return [(list, type(d[0]))]
    if type(d) in SCALARS.values():
        return [type(d)]
    return []  # no annotation and a None (or mixed) default: any Python literal, else the text


def _list(text: str, item: type) -> list[Any]:
    if item is int:
        return parse_int_list(text)  # "1,2", "[1, 2]", "1-5": the grammar of --seeds
    text = text.strip()
    if text[:1] + text[-1:] == "[]":
        text = text[1:-1]
    items = text.split(",")
    if items and not items[-1].strip():
        items = items[:-1]  # "1," and "" are allowed
    return [parse_scalar(t, item) for t in items]


def convert(param: Parameter, text: str) -> Any:
    """``-p`` text -> a value of ``param``'s declared type: ``"3"`` -> ``[3]`` for ``list[int] | None``."""
    alts = declared_types(param)
    if not alts:
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
    if None in alts and is_none_word(text):
        return None
    reasons = []
    for alt in sorted((a for a in alts if a is not None), key=lambda a: a is str):  # str last: it always fits
        try:
            return _list(text, alt[1]) if isinstance(alt, tuple) else parse_scalar(text, alt)
        except ValueError as err:
            reasons.append(str(err))
    raise ParameterError(f"-p {param.name}={text!r}: cannot convert to the declared type `{param.type_text}`"
                         f" ({'; '.join(reasons)})")


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}`` (text; ``convert`` types it per notebook)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ParameterError(f"parameter {pair!r} is not of the form key=value (key a Python identifier); "
                                 "write e.g. -p seed=1")
        out[key] = value
    return out


def convert_overrides(texts: dict[str, str], declared: dict[str, Parameter]) -> dict[str, Any]:
    """The overrides this notebook declares, converted to its declared types (others are left out)."""
    return {k: convert(declared[k], v) for k, v in texts.items() if k in declared}


def describe(param: Parameter) -> str:
    """``name: type = default  # help``, as ``specreg reproduce --list`` prints it."""
    text = f"{param.name}: {param.type_text} = {param.default!r}"
    return text + (f"  # {param.help}" if param.help else "")
