"""Read the policy YAML into a validated TiergateConfig; every error names its YAML path and line."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from router.policy import TiergateConfig


class PolicyFileError(Exception):
    """The policy file can't be used; `errors` lists one line per problem."""

    def __init__(self, path: Path, errors: list[str]) -> None:
        super().__init__(f"{path}: " + "; ".join(errors))
        self.path = path
        self.errors = errors

    def lines(self) -> str:
        """What the command line prints: one line per problem, each naming the file."""
        return "\n".join(f"{self.path}: {x}" for x in self.errors)


def _yaml_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _line_of(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """Walk the composed YAML node tree along `loc` to find the line an error points at (1-based)."""
    node = root
    line = None
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            node = None
    return node.start_mark.line + 1 if node is not None else line


# ${NAME} or ${NAME:-default}; $${ is a literal ${.
_VAR = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _substitute(data: Any, env: Mapping[str, str], loc: tuple[int | str, ...], missing: list[tuple[Any, str]]) -> Any:
    """`data` with ${NAME} in its string values (not its keys) replaced from `env`; an unset name without a default
    is added to `missing` with where it is, and left as it was."""
    if isinstance(data, dict):
        return {k: _substitute(v, env, (*loc, k), missing) for k, v in data.items()}
    if isinstance(data, list):
        return [_substitute(v, env, (*loc, i), missing) for i, v in enumerate(data)]
    if not isinstance(data, str) or "${" not in data:
        return data

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$${":
            return "${"
        name, default = m.group(1), m.group(2)
        if (value := env.get(name)) is not None:
            return value
        if default is not None:
            return default
        missing.append((loc, name))
        return m.group(0)

    return _VAR.sub(one, data)


def parse(text: str, path: Path, env: Mapping[str, str] | None = None) -> TiergateConfig:
    """`env` (default: the process's environment) fills ${NAME} and ${NAME:-default} in string values, so one file
    serves several deployments (`api_base: ${LLAMA_URL:-http://127.0.0.1:8081/v1}`). Secrets still belong in the
    variables `api_key_env` names: a substituted value is part of the configuration anything may print."""
    try:
        data: Any = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as e:
        raise PolicyFileError(path, [f"not valid YAML: {e}"]) from e
    if not isinstance(data, dict):
        raise PolicyFileError(path, ["(top level): expected a mapping with 'models' and 'policies'"])
    missing: list[tuple[Any, str]] = []
    data = _substitute(data, os.environ if env is None else env, (), missing)
    if missing:
        raise PolicyFileError(
            path,
            [
                f"{_yaml_path(loc)}{f' (line {line})' if (line := _line_of(root, loc)) else ''}: ${{{name}}} is not"
                f" set, and has no default (write ${{{name}:-default}} for one)"
                for loc, name in missing
            ],
        )
    try:
        return TiergateConfig.model_validate(data)
    except ValidationError as e:
        errors = []
        for err in e.errors():
            loc = tuple(err["loc"])
            line = _line_of(root, loc)
            where = _yaml_path(loc) + (f" (line {line})" if line else "")
            msg = err["msg"].removeprefix("Value error, ")
            errors.append(f"{where}: {msg}")
        raise PolicyFileError(path, errors) from e


def load(path: Path) -> TiergateConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise PolicyFileError(path, [f"cannot read: {e.strerror}"]) from e
    return parse(text, path)
