"""Read JSONL files of prompts or outcomes; a bad line is an error naming the file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from classifiers.labels import BadRows, Example, examples


class BadInput(ValueError):
    """A file the user named cannot be read as asked: the command line says so in one line, with no traceback."""


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    try:
        f = path.open(encoding="utf-8")
    except OSError as e:
        raise BadInput(f"{path}: cannot read: {e.strerror}") from e
    with f:
        try:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise BadInput(f"{path}:{n}: not JSON: {e.msg}") from e
                if not isinstance(obj, dict):
                    raise BadInput(f"{path}:{n}: expected a JSON object")
                yield obj
        except UnicodeDecodeError as e:
            raise BadInput(f"{path}: not UTF-8 text ({e.reason})") from e


@contextmanager
def labelling(path: Path) -> Iterator[None]:
    """Rows of `path` that cannot be labelled (classifiers/labels.py: BadRows) are BadInput naming the file."""
    try:
        yield
    except BadRows as e:
        raise BadInput(f"{path}: {e}") from e


def labelled(path: Path, weak: str | None = None) -> list[Example]:
    """The training examples of an outcome file."""
    with labelling(path):
        return examples(read_jsonl(path), weak)
