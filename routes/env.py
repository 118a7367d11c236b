"""Channel settings from the environment: ``${VAR}`` and ``${VAR:-default}``, never literal secrets.

Secrets live in the environment (or a secret store that fills it), so a config file can be
committed and reviewed without leaking credentials.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from routes.errors import Loc

PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SECRET_WORDS = ("secret", "token", "password", "passwd", "api_key", "apikey", "private_key")


def is_secret_key(key: str) -> bool:
    """Whether a setting name looks like a credential, which must come from the environment."""
    norm = key.lower().replace("-", "_")
    return any(word in norm for word in _SECRET_WORDS)


def secret_problem(key: str, value: str) -> str | None:
    """Why a secret setting's raw value is not allowed, or None when it is one bare ``${VAR}``."""
    match = PLACEHOLDER.fullmatch(value.strip())
    if match is None:
        return (
            f"setting {key!r} looks like a secret and must come from the environment: "
            f"write it as ${{{_suggest(key)}}}, not as a literal value"
        )
    if match.group(2):
        return (
            f"setting {key!r} looks like a secret; its default would be a literal secret "
            f"in the file (use ${{{match.group(1)}}} or an empty default)"
        )
    return None


def resolve(value: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """Substitute every placeholder; return the result and the problems (unset or malformed)."""
    problems: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        problems.append(
            f"environment variable {name} is not set and ${{{name}}} has no default "
            f"(set it, or write ${{{name}:-default}})"
        )
        return ""

    result = PLACEHOLDER.sub(substitute, value)
    if "${" in PLACEHOLDER.sub("", value):
        problems.append(
            f"malformed placeholder in {value!r}: use ${{NAME}} or ${{NAME:-default}} "
            "(NAME of letters, digits and '_')"
        )
    return result, problems


def check_settings(
    settings: Mapping[str, str], env: Mapping[str, str] | None
) -> tuple[dict[str, str], list[tuple[Loc, str]]]:
    """Refuse literal secrets and, given an environment, resolve placeholders in every value."""
    out: dict[str, str] = {}
    problems: list[tuple[Loc, str]] = []
    for key, value in settings.items():
        if is_secret_key(key) and (why := secret_problem(key, value)):
            problems.append(((key,), why))
            continue
        if env is None:
            out[key] = value
            continue
        out[key], found = resolve(value, env)
        problems.extend(((key,), msg) for msg in found)
    return out, problems


def _suggest(key: str) -> str:
    return re.sub(r"[^A-Z0-9_]", "_", key.upper())
