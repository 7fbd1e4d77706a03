"""Frozen dataclass configs: field docstrings, validation, CLI flags and JSON round-trips.

An algorithm's config is a frozen ``@dataclass`` whose fields carry a docstring right below
them (an attribute docstring). Those docstrings become the ``--help`` text of the CLI flags.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import importlib
import inspect
import math
import textwrap
import types
import typing
from typing import Any


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """``{field: docstring}`` read from the attribute docstrings in ``cls``'s source."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        body = ast.parse(source).body[0].body  # type: ignore[attr-defined]
        for node, nxt in zip(body, body[1:]):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _base_type(annotation: Any) -> tuple[type, bool]:
    """(scalar type, optional) for e.g. ``float``, ``int | None``, ``tuple[int, ...]``."""
    if isinstance(annotation, str):
        annotation = eval(annotation, {"typing": typing})  # noqa: S307 (our own annotations)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        base, _ = _base_type(args[0])
        return base, True
    if origin is tuple:
        return tuple, False
    return annotation, False


def _parse_value(text: str, base: type, optional: bool, name: str) -> Any:
    """``text`` as ``base`` (``name`` says what is read, for the error message)."""
    if optional and text.lower() in ("none", "null", ""):
        return None
    try:
        if base is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if base is tuple:
            return tuple(_bounded(int(x), name) for x in text.replace(",", " ").split())
        if base is int:
            return _bounded(_whole(text), name)
        if base is float:
            number = float(text)
            if not math.isfinite(number):
                raise ValueError(f"{name}: {text!r} is not a finite number")
            return number
        return base(text)
    except (ValueError, OverflowError) as e:
        if str(e).startswith(name):
            raise
        raise ValueError(f"{name}: cannot read {text!r} as {base.__name__}") from None


INT_LIMIT = 2**62  # whole numbers beyond this overflow the C integers below torch and numpy


def _bounded(value: int, name: str) -> int:
    if abs(value) > INT_LIMIT:
        raise ValueError(f"{name}: {value} is too large (the limit is 2**62)")
    return value


def _whole(text: str) -> int:
    """An int from ``"1000"`` or ``"1e6"`` (a whole number written as a float), else ValueError."""
    try:
        return int(text)
    except ValueError:
        number = float(text)
        if not number.is_integer():
            raise
        return int(number)


def add_config_arguments(
    parser: argparse.ArgumentParser,
    cls: type,
    dest_prefix: str = "cfg_",
    title: str | None = None,
    names: list[str] | None = None,
) -> None:
    """Add one ``--field-name`` flag per field of ``cls`` (or of ``names``), with the field
    docstring as help; the values land in ``args.<dest_prefix><field>`` (None if not given)."""
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(title or f"{cls.__name__} (config fields)")
    for f in dataclasses.fields(cls):
        if names is not None and f.name not in names:
            continue
        base, optional = _base_type(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        group.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=dest_prefix + f.name,
            default=None,
            metavar=base.__name__.upper() if base is not tuple else "N,N",
            help=doc if "default" in (doc := docs.get(f.name, "")) else f"{doc} (default: {shown})",
        )


def overrides_from_args(
    args: argparse.Namespace, cls: type, dest_prefix: str = "cfg_", what: str = "config field"
) -> dict[str, Any]:
    """The values given on the command line, parsed to their field types; an unreadable value
    raises a ValueError naming the flag."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        text = vars(args).get(dest_prefix + f.name)
        if text is not None:
            base, optional = _base_type(hints[f.name])
            label = f"--{f.name.replace('_', '-')} ({what} {f.name!r})"
            out[f.name] = _parse_value(str(text), base, optional, label)
    return out


def coerce(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """Check names and types of ``values`` (e.g. from a JSON/TOML config file) for ``cls``."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(
            f"unknown config field(s) {unknown} for {cls.__name__}; valid fields: "
            + ", ".join(sorted(names))
        )
    hints = typing.get_type_hints(cls)
    out = {}
    for name, value in values.items():
        base, optional = _base_type(hints[name])
        if value is None and optional:
            out[name] = None
        elif base is tuple and isinstance(value, (list, tuple)):
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                raise ValueError(f"config field {name!r}: expected whole numbers, got {value!r}")
            out[name] = tuple(value)
        elif base is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ValueError(f"config field {name!r}: {value!r} is not a finite number")
            out[name] = float(value)
        elif isinstance(value, base) and not (base is int and isinstance(value, bool)):
            out[name] = value
        elif isinstance(value, str):
            out[name] = _parse_value(value, base, optional, f"config field {name!r}")
        else:
            raise ValueError(
                f"config field {name!r}: expected {base.__name__}, "
                f"got {type(value).__name__} {value!r}"
            )
    return out


def import_object(path: str) -> Any:
    """The object at ``"package.module:name"`` (how renshu's registries name their entries,
    so that a name costs no import until it is used)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def to_dict(config: Any) -> dict[str, Any]:
    return {
        k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()
    }


def check(condition: bool, name: str, why: str, value: Any) -> None:
    """Raise ``ValueError("config field 'name' = value: why")`` unless ``condition``."""
    if not condition:
        raise ValueError(f"config field {name!r} = {value!r}: {why}")


def check_fields(
    config: Any,
    *,
    at_least_1: tuple[str, ...] = (),
    at_least_0: tuple[str, ...] = (),
    positive: tuple[str, ...] = (),
    unit: tuple[str, ...] = (),
    choices: dict[str, tuple[Any, ...]] | None = None,
) -> None:
    """The usual checks of a config's fields, by name: whole numbers ``>= 1`` or ``>= 0``,
    finite numbers ``> 0``, numbers in ``[0, 1]``, and one of a few ``choices``."""
    values = vars(config)
    for name in at_least_1:
        check(values[name] >= 1, name, "must be >= 1", values[name])
    for name in at_least_0:
        check(values[name] >= 0, name, "must be >= 0", values[name])
    for name in positive:
        value = values[name]
        check(math.isfinite(value) and value > 0, name, "must be > 0 and finite", value)
    for name in unit:
        check(0 <= values[name] <= 1, name, "must lie in [0, 1]", values[name])
    for name, valid in (choices or {}).items():
        check(values[name] in valid, name, " or ".join(map(str, valid)), values[name])


def check_network(hidden: tuple[int, ...], activation: str) -> None:
    """The network fields every algorithm config shares: ``hidden`` sizes and ``activation``."""
    check(
        len(hidden) >= 1 and all(h >= 1 for h in hidden),
        "hidden",
        "needs at least one layer, each of size >= 1",
        hidden,
    )
    check(activation in ("tanh", "relu"), "activation", "tanh or relu", activation)


def read_toml(path, kind: str) -> dict:
    """A TOML file as a dict (``kind``, e.g. "sweep file", names it in errors): a file that cannot
    be read is a FileNotFoundError, bad TOML a ValueError, each one line with the path."""
    from pathlib import Path

    import tomllib

    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise FileNotFoundError(f"cannot read {kind} {path}: {e.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{kind} {path}: {e}") from None
