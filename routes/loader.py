"""Reading a config file: YAML to ``HubConfig``, with every error located by path and line.

``hub config check`` and ``hub run`` both come through here, so an operator sees the same
located messages before deploying as the hub would refuse to start with.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from routes.checks import cross_check
from routes.config import HubConfig
from routes.errors import ConfigError, ConfigInvalid, Loc, Problems, format_loc

__all__ = ["ConfigError", "ConfigInvalid", "check_config", "load_config"]

_Marks = dict[Loc, tuple[int, int]]


def load_config(path: Path, env: Mapping[str, str] | None = None) -> HubConfig:
    """Load and validate a config, resolving ``${VAR}`` from ``env`` (default: os.environ)."""
    cfg, errors = _load(Path(path), os.environ if env is None else env)
    if errors or cfg is None:
        raise ConfigInvalid(errors, str(path))
    return cfg


def check_config(path: Path, env: Mapping[str, str] | None = None) -> list[ConfigError]:
    """Every problem in a config file, in file order; an empty list means it loads."""
    return _load(Path(path), os.environ if env is None else env)[1]


def _load(path: Path, env: Mapping[str, str]) -> tuple[HubConfig | None, list[ConfigError]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [ConfigError("", f"cannot read {path}: {exc}")]
    try:
        data, marks, errors = _parse(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        where = f" at line {line}, column {col}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        return None, [ConfigError("", f"YAML syntax error{where}: {problem}", line, col)]
    except yaml.YAMLError as exc:
        return None, [ConfigError("", f"YAML error: {exc}")]
    if not isinstance(data, dict):
        found = "an empty file" if data is None else f"a {type(data).__name__}"
        return None, [
            ConfigError("", f"the config must be a mapping with 'version: 1'; got {found}")
        ]
    try:
        cfg = HubConfig.model_validate(data, context={"env": env})
    except ValidationError as exc:
        errors.extend(_from_validation(exc, marks))
        errors.extend(_references(data, errors, marks))
        return None, sorted(errors, key=lambda e: (e.line or 0, e.location))
    return (None if errors else cfg), errors


def _parse(text: str) -> tuple[Any, _Marks, list[ConfigError]]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}, []
        marks: _Marks = {}
        errors: list[ConfigError] = []
        _walk(node, (), marks, errors, set())
        return loader.construct_document(node), marks, errors
    finally:
        loader.dispose()


def _walk(
    node: yaml.Node, loc: Loc, marks: _Marks, errors: list[ConfigError], seen: set[int]
) -> None:
    if id(node) in seen:  # an alias repeats a subtree; its marks are already recorded
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            mark = key_node.start_mark
            here = (*loc, key)
            if key in first and key != "<<":
                errors.append(
                    ConfigError(
                        format_loc(here),
                        f"duplicate key {key!r} (first at line {first[key]}); "
                        "YAML would silently keep only the last one",
                        mark.line + 1,
                        mark.column + 1,
                    )
                )
            first.setdefault(key, mark.line + 1)
            marks.setdefault(here, (mark.line + 1, mark.column + 1))
            _walk(value_node, here, marks, errors, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            here = (*loc, i)
            marks.setdefault(here, (item.start_mark.line + 1, item.start_mark.column + 1))
            _walk(item, here, marks, errors, seen)


def _from_validation(exc: ValidationError, marks: _Marks) -> list[ConfigError]:
    out: list[ConfigError] = []
    for err in exc.errors():
        loc: Loc = tuple(p for p in err["loc"] if p != "[key]")
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, Problems):
            out.extend(_located((*loc, *sub), msg, marks) for sub, msg in cause.items)
        else:
            out.append(_located(loc, _message(err["type"], err["msg"], loc), marks))
    return out


def _references(data: dict[str, Any], found: list[ConfigError], marks: _Marks) -> list[ConfigError]:
    # Fields failed, so the model's own reference check never ran: run it on the raw data and
    # keep what does not overlap an error already reported at, above or below that spot.
    taken = [e.location for e in found]
    out = []
    for loc, msg in cross_check(data):
        where = format_loc(loc)
        if not any(_overlaps(where, t) for t in taken):
            out.append(_located(loc, msg, marks))
    return out


def _overlaps(a: str, b: str) -> bool:
    short, long = sorted((a, b), key=len)
    return long == short or long.startswith((f"{short}.", f"{short}[")) or not short


def _located(loc: Loc, message: str, marks: _Marks) -> ConfigError:
    for n in range(len(loc), -1, -1):  # the nearest enclosing node the file has
        if (mark := marks.get(loc[:n])) is not None:
            return ConfigError(format_loc(loc), message, *mark)
    return ConfigError(format_loc(loc), message)


def _message(kind: str, msg: str, loc: Loc) -> str:
    field = repr(loc[-1]) if loc else "field"
    if kind == "extra_forbidden":
        return f"unknown field {field} (misspelt, or in the wrong section?)"
    if kind == "missing":
        return f"required field {field} is missing"
    return msg.removeprefix("Value error, ")
