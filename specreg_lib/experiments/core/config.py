"""Typed experiment configs: nested frozen dataclasses, dotted overrides, profiles, JSON round trips, hashes.

An experiment's config is one frozen dataclass composed of sub-configs (data, model, diffusion, regularizer,
train, sample, evaluate); every sub-config validates itself in ``__post_init__``. Anything that changes a
value goes through :func:`apply_overrides` with dotted paths (``"train.steps"``, ``"regularizer.lambda_spec"``)
or a leaf name that is unique in the tree (``"steps"``, ``"lambda_spec"``), so a typo is an error that lists
the valid names. Strings from a command line are converted with the field's declared type (:func:`parse_text`),
scalars and seeds by the one text grammar every door shares (``specreg_lib/text.py``: ``parse_scalar``, ``parse_seeds``,
also the notebooks' ``-p``).

Every value is validated when the config is built, by one rule per type (``training/config.py``, re-exported
here): each int/float field declares its :class:`Range` beside it (``Annotated[int, Range(1, MAX_BATCH)]``) and
every config's ``__post_init__`` calls :func:`check_ranges` first, so a float is finite and every number in its
range before anything runs. Whatever a config refuses, by that rule or a check across fields, reaches the caller
as one :class:`ConfigError` (an ``InputError``: one line and exit code 2 at every door) that names the dotted path
(``train.steps``), the value, what is allowed and an example.

A variant (:class:`Variant`, named in an experiment's variant table) is L_S only: a spectral loss kind and its
options. Wherever a variant is put into a config, by name or as a value, it takes lambda_spec and the weighting
from the regularizer the config holds at that point (the dataclass default when that is the baseline), so a
profile, ``--set lambda_spec=...`` or a ``lambda_spec`` grid axis sets them once for every variant. A registered
spectral kind that no table names (``specreg_lib.spectral.register_kind``) is a variant of its own name.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ...diffusion import Regularizer, SpectralWeighting
from ...io import write_json
from ...text import is_none_word, parse_scalar, split_top
from ...training.config import (  # noqa: F401  (the one rule for every config's numbers, re-exported)
    MAX_BATCH,
    MAX_IMAGES,
    MAX_KIMG,
    MAX_SEED,
    MAX_STEPS,
    MAX_THREADS,
    ConfigError,
    ConfigTypeError,
    Range,
    check_ranges,
    declared_ranges,
    refuse,
)

PROFILES = ("smoke", "cpu", "paper")

C = TypeVar("C")


class NotApplicable(Exception):
    """An override that reaches into a sub-config that is None (e.g. ``regularizer.lambda_spec`` of a baseline)."""


def check_profile(profile: str) -> str:
    """Validate a profile name (``smoke`` for CPU tests, ``cpu`` for long CPU runs, ``paper`` for GPU boxes)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    return profile


# ------------------------------------------------------------------ dict <-> dataclass


def check_run_fields(cfg: Any) -> None:
    """The checks every experiment config shares: its own numbers (:func:`check_ranges`, e.g. ``threads``) and a
    regularizer that JSON can hold."""
    check_ranges(cfg)
    if cfg.regularizer is not None and not isinstance(cfg.regularizer.kind, str):
        raise refuse(cfg, "regularizer", "name its kind, built-in or registered (a config is saved as JSON)")


@dataclass(frozen=True)
class Variant:
    """A regularizer variant as an experiment's table names it: L_S only, a spectral loss ``kind`` (Eqs. 14-16 or
    a registered one) and its ``options``; lambda_spec and the weighting come from the config it is put into."""

    kind: str
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", dict(self.options))
        self.regularizer()  # validates kind and options now, where the table is written

    def regularizer(self, like: Regularizer | None = None) -> Regularizer:
        """This L_S with ``like``'s lambda_spec and weighting (Regularizer's defaults when ``like`` is None)."""
        if like is None:
            return Regularizer(self.kind, options=self.options)
        return Regularizer(self.kind, like.lambda_spec, like.weighting, self.options)


def resolve_variant(name: str, variants: Mapping[str, Variant | None] | None) -> Variant | None:
    """A variant by name: an entry of ``variants`` (None = the baseline), else a registered spectral kind."""
    from ...spectral import KINDS

    if variants is not None and name in variants:
        return variants[name]
    if name in KINDS:
        return Variant(name)
    raise ValueError(f"unknown regularizer variant {name!r}; choose one of {list(variants or {})} or a spectral "
                     f"kind ({', '.join(KINDS)})")


def parse_set_options(cls: type, items: list[str], variants: Mapping[str, Variant | None] | None = None
                      ) -> dict[str, Any]:
    """CLI ``--set FIELD=VALUE`` items -> {dotted path: value}, each converted by the field's declared type."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r} is not FIELD=VALUE")
        path, values = parse_values(cls, key.strip(), text, variants)
        if len(values) != 1:
            raise ValueError(f"--set {item!r} gives {len(values)} values; one value per --set (a sweep takes --grid)")
        overrides[path] = values[0]
    return overrides


def to_dict(cfg: Any) -> Any:
    """A config as plain JSON-able data (nested dicts, lists, scalars); Regularizer via its ``to_dict``."""
    if isinstance(cfg, Regularizer):
        return cfg.to_dict()
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, tuple | list):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    return cfg


@functools.cache  # a class's hints never change; get_type_hints re-evaluates every string annotation each call
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _optional_inner(hint: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); anything else -> (hint, False)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) < len(typing.get_args(hint)) and len(args) == 1:
            return args[0], True
    return hint, False


def _from_data(hint: Any, value: Any, where: str) -> Any:
    """``value`` (JSON data or an object) as the declared ``hint`` of the field at dotted path ``where``."""
    inner, optional = _optional_inner(hint)
    if value is None:
        if optional:
            return None
        raise ConfigTypeError(where, f"null is not allowed for a field of type {_type_name(hint)}", value)
    if inner is Regularizer:
        if isinstance(value, Regularizer):
            return value
        if not isinstance(value, Mapping):
            raise ConfigTypeError(where, "expected a mapping {kind, lambda_spec, weighting, options}", value)
        try:  # the library's own checks (finite lambda_spec >= 0, a known kind and weighting), named by path
            return Regularizer.from_dict(dict(value))
        except (ValueError, TypeError) as err:
            raise ConfigError(where, str(err)) from None
    if isinstance(inner, type) and dataclasses.is_dataclass(inner):
        if isinstance(value, inner):
            return value
        if not isinstance(value, Mapping):
            raise ConfigTypeError(where, f"expected a mapping for {inner.__name__}", value)
        return from_dict(inner, value, where)
    if typing.get_origin(inner) is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigTypeError(where, f"expected a list for {_type_name(hint)}", value)
        elem = typing.get_args(inner)[0]
        return tuple(_from_data(elem, v, where) for v in value)
    if inner is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)  # 1 and 1.0 must hash alike
    if inner in (int, float):  # the config's check_ranges judges kind, finiteness and range, with an example
        return value
    if inner is bool and not isinstance(value, bool):
        raise ConfigTypeError(where, "expected true or false", value)
    if inner is str and not isinstance(value, str):
        raise ConfigTypeError(where, "expected a string", value)
    return value


def _type_name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint)


def _build(cls: type[C], kwargs: Mapping[str, Any], prefix: str) -> C:
    """``cls(**kwargs)``, whatever it refuses a ConfigError at the dotted ``prefix`` ("train." or ""): a config's
    own checks name the field below the class, completed here; a library constructor it calls (a U-Net, a
    schedule) says it in its own words, put at the sub-config's path."""
    try:
        return cls(**kwargs)
    except ConfigError as err:
        raise err.rooted(prefix) from None
    except ValueError as err:
        raise ConfigError(prefix.rstrip(".") or cls.__name__, str(err)) from err


def from_dict(cls: type[C], data: Mapping[str, Any], where: str = "") -> C:
    """Rebuild a (nested) config dataclass from :func:`to_dict` output; unknown keys are an error."""
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(where or cls.__name__, f"unknown field(s) {unknown}; valid: {names}")
    prefix = f"{where}." if where else ""
    kwargs = {k: _from_data(hints[k], v, prefix + k) for k, v in data.items()}
    return _build(cls, kwargs, prefix)


# ------------------------------------------------------------------ dotted overrides


@functools.cache  # called for every override of every config: walk each class once (read-only result)
def field_paths(cls: type, prefix: str = "") -> Mapping[str, Any]:
    """Every leaf field of a config class as ``{dotted path: type}`` (sub-configs are walked, X | None too)."""
    out: dict[str, Any] = {}
    for name, hint in _hints(cls).items():
        if name not in {f.name for f in dataclasses.fields(cls)}:
            continue
        inner, _ = _optional_inner(hint)
        path = prefix + name
        out[path] = hint
        if isinstance(inner, type) and dataclasses.is_dataclass(inner) and inner is not SpectralWeighting:
            out.update(field_paths(inner, path + "."))
    return types.MappingProxyType(out)


def resolve_path(cls: type, key: str) -> str:
    """A dotted path, or a leaf name that is unique in the tree, -> the full dotted path."""
    paths = field_paths(cls)
    if key in paths:
        return key
    hits = [p for p in paths if p.rsplit(".", 1)[-1] == key]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise KeyError(f"{key!r} is ambiguous in {cls.__name__}: say one of {hits}")
    raise KeyError(f"{cls.__name__} has no field {key!r}; valid fields: {', '.join(sorted(paths))}")


def path_type(cls: type, path: str) -> Any:
    """The declared type of a dotted path."""
    return field_paths(cls)[resolve_path(cls, path)]


def parse_text(text: str, hint: Any, variants: Mapping[str, Variant | None] | None = None) -> Any:
    """One command-line value converted to the declared type: scalars by :func:`parse_scalar`, tuples, X | None
    (none/null), a Regularizer field by variant name (:func:`resolve_variant`; the Variant is completed where it
    is applied, :func:`apply_overrides`)."""
    inner, optional = _optional_inner(hint)
    t = text.strip()
    if optional and is_none_word(t):
        return None
    union = typing.get_args(inner) if typing.get_origin(inner) in (typing.Union, types.UnionType) else ()
    if str in union:  # e.g. a weighting given by name; the owning dataclass validates it
        return parse_scalar(t, str)
    if inner is Regularizer:
        return resolve_variant(t, variants)
    if typing.get_origin(inner) is tuple:
        args = typing.get_args(inner)
        elem = args[0]
        body = t[1:-1] if t[:1] in "[(" and t[-1:] in "])" else t
        items = [s for s in (x.strip() for x in body.split(",")) if s]
        return tuple(parse_text(s, elem) for s in items)
    if inner in (bool, int, float, str):
        return parse_scalar(t, inner)
    raise ValueError(f"cannot parse {text!r} as {hint}")


def parse_values(cls: type, key: str, text: str,
                 variants: Mapping[str, Variant | None] | None = None) -> tuple[str, list[Any]]:
    """``("lambda_spec", "0.1,1")`` -> ``("regularizer.lambda_spec", [0.1, 1.0])`` (a grid axis)."""
    path = resolve_path(cls, key)
    hint = path_type(cls, path)
    try:
        return path, [parse_text(v, hint, variants) for v in split_top(text)]
    except ConfigError:
        raise
    except ValueError as err:
        raise ConfigError(path, str(err), text) from None


def _replace(cfg: Any, parts: list[str], value: Any, full: str, prefix: str = "") -> Any:
    """``cfg`` with the field at ``parts`` (below the dotted ``prefix``) set to ``value``. Every sub-config on the
    way is rebuilt and re-validates; what one refuses is a ConfigError at its dotted path."""
    name, rest = parts[0], parts[1:]
    new = value
    if rest:
        sub = getattr(cfg, name)
        if sub is None:
            raise NotApplicable(f"{full}: {name} is None here")
        new = _replace(sub, rest, value, full, f"{prefix}{name}.")
    try:
        return dataclasses.replace(cfg, **{name: new})
    except ConfigError as err:
        raise err.rooted(prefix) from None
    except ValueError as err:  # a library constructor's own words (a U-Net, a schedule): named by the override
        raise ConfigError(full, str(err), value) from err


def apply_overrides(cfg: C, overrides: Mapping[str, Any], skip_not_applicable: bool = False,
                    variants: Mapping[str, Variant | None] | None = None) -> C:
    """Return ``cfg`` with each ``{path or unique leaf name: value}`` applied, shallow paths first.

    A path into a sub-config that is None (``regularizer.lambda_spec`` of a baseline) raises
    :class:`NotApplicable`, or is skipped with ``skip_not_applicable=True`` (a sweep's baseline points).
    Every sub-config re-validates, so a bad value fails here, before anything runs. A string for a non-string
    field is parsed with :func:`parse_text` (a Regularizer field takes a name from ``variants``). A
    :class:`Variant` takes lambda_spec and weighting from the regularizer ``cfg`` holds there (the dataclass
    default when ``cfg`` is the baseline); an explicit Regularizer is used as it is.
    """
    resolved = [(resolve_path(type(cfg), k), v) for k, v in overrides.items()]
    for path, value in sorted(resolved, key=lambda kv: kv[0].count(".")):
        hint = path_type(type(cfg), path)
        inner, _ = _optional_inner(hint)
        if isinstance(value, str) and inner is not str:
            try:
                value = parse_text(value, hint, variants)
            except ValueError as err:
                raise ConfigError(path, str(err), value) from None
        if isinstance(value, Variant):
            value = value.regularizer(get_path(cfg, path) or _field_default(type(cfg), path))
        value = _from_data(hint, value, path)
        try:
            cfg = _replace(cfg, path.split("."), value, path)
        except NotApplicable:
            if not skip_not_applicable:
                raise
    return cfg


def _field_default(cls: type, path: str) -> Any:
    """The dataclass default of the field at a dotted path (its factory's value)."""
    *parents, leaf = path.split(".")
    for part in parents:
        cls = _optional_inner(_hints(cls)[part])[0]
    f = next(f for f in dataclasses.fields(cls) if f.name == leaf)
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def get_path(cfg: Any, path: str) -> Any:
    """The value at a dotted path (None when a sub-config on the way is None)."""
    for part in resolve_path(type(cfg), path).split("."):
        if cfg is None:
            return None
        cfg = getattr(cfg, part)
    return cfg


# ------------------------------------------------------------------ hashing and saving


def config_hash(cfg: Any, exclude: frozenset[str] | set[str] = frozenset(), length: int = 10) -> str:
    """SHA-1 of the canonical JSON of ``cfg`` without the ``exclude`` dotted paths (or whole sub-configs)."""
    data = to_dict(cfg)
    for path in exclude:
        parts = path.split(".")
        node = data
        for p in parts[:-1]:
            node = node.get(p) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(parts[-1], None)
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(blob.encode()).hexdigest()[:length]


def save_config(cfg: Any, path: str | os.PathLike, **extra: Any) -> Path:
    """Write ``cfg`` as JSON (atomic) with its class name and ``extra`` keys (e.g. experiment, profile)."""
    if not dataclasses.is_dataclass(cfg):
        raise TypeError(f"save_config expects a dataclass instance, got {type(cfg).__name__}")
    return write_json(path, {"config_class": type(cfg).__name__, **extra, "config": to_dict(cfg)})


def load_config(cls: type[C], path: str | os.PathLike) -> C:
    """Read back what :func:`save_config` wrote (the class name must match); every value is checked again, and a
    bad one is a ConfigError naming the file and the field's dotted path."""
    try:
        data = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(str(path), f"is not the JSON save_config writes ({err}); delete it and its run folder, "
                          "or restore it") from None
    if not isinstance(data, dict) or data.get("config_class") != cls.__name__ or \
            not isinstance(data.get("config"), dict):
        found = data.get("config_class") if isinstance(data, dict) else type(data).__name__
        raise ConfigError(str(path), f"holds a {found!r} config, not {cls.__name__}; point to a {cls.__name__} "
                          "config.json")
    try:
        return from_dict(cls, data["config"])
    except ConfigError as err:
        raise ConfigError(f"{path}: {err.path}", err.problem, err.value, err.example) from None
