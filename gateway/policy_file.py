"""Read the policy YAML into a validated TiergateConfig; every error names its YAML path and line."""

from __future__ import annotations

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


def parse(text: str, path: Path) -> TiergateConfig:
    try:
        data: Any = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as e:
        raise PolicyFileError(path, [f"not valid YAML: {e}"]) from e
    if not isinstance(data, dict):
        raise PolicyFileError(path, ["(top level): expected a mapping with 'models' and 'policies'"])
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
