"""A missing or malformed input file is one line on stderr naming it, and exit status 1: not a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "cannot read: No such file or directory"),
        (b'{"id": 1}\nnot json\n', ":2: not JSON"),
        (b"[1, 2]\n", ":1: expected a JSON object"),
        (b'\xff\xfe{"id": 1}\n', "not UTF-8 text"),
    ],
    ids=["missing", "not-json", "not-an-object", "not-utf8"],
)
@pytest.mark.parametrize("command", ["train", "eval-router", "classify"])
def test_a_bad_input_file_is_one_line_and_status_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, says: str, command: str
) -> None:
    data = tmp_path / "in.jsonl"
    if content is not None:
        data.write_bytes(content)
    argv = {
        "train": ["train", "--data", str(data), "--out", str(tmp_path / "a.json")],
        "eval-router": ["eval-router", "--data", str(data), "--strong", "s", "--weak", "w"],
        "classify": ["classify", "--input", str(data), "--output", str(tmp_path / "out.jsonl")],
    }[command]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"tiergate {command}: {data}") and says in err and err.count("\n") == 1
