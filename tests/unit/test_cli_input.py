"""A missing or malformed input file is one line on stderr naming it, and exit status 1: not a traceback."""

from __future__ import annotations

import subprocess
import sys
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


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b'{"id": "c1", "prompt": "hi"}\n', "no row has a model's outcome in `scores`"),
        (
            b'{"id": "c1", "prompt": "hi", "scores": {"m": "good"}}\n',
            "row c1: the outcome of m is 'good', not a number",
        ),
        (b'{"id": "c1", "prompt": "hi", "scores": {"m": true}}\n', "row c1: the outcome of m is True, not a number"),
        (b'{"id": "c1", "prompt": "hi", "scores": [1]}\n', "row c1: `scores` is not an object"),
    ],
    ids=["no-outcomes", "text-outcome", "bool-outcome", "scores-not-an-object"],
)
@pytest.mark.parametrize("command", ["train", "eval-router", "eval-costs", "calibrate"])
def test_rows_that_cannot_be_labelled_are_one_line_and_status_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, says: str, command: str
) -> None:
    """JSON lines that are objects but hold no usable outcome: a ValueError's traceback before (train), or a
    crash deep in labelling for the files a command only trains on (eval-router's --train-extra)."""
    data = tmp_path / "out.jsonl"
    data.write_bytes(content)
    good = tmp_path / "good.jsonl"
    good.write_text('{"id": "g1", "prompt": "x", "scores": {"s": 1, "w": 0}, "cost_usd": {"s": 1, "w": 0}}\n')
    argv = {
        "train": ["train", "--data", str(data), "--out", str(tmp_path / "a.json")],
        "eval-router": ["eval-router", "--data", str(good), "--strong", "s", "--weak", "w", "--train-extra", str(data)],
        "eval-costs": ["eval-costs", "--data", str(data), "--reference", "s"],
        "calibrate": ["calibrate", "--reference", str(data), "--shares", "0.5,0.3,0.2"],
    }[command]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"tiergate {command}: {data}: ") and says in err and err.count("\n") == 1


def test_training_on_prompts_of_one_kind_only_is_one_line_and_status_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every prompt passed (or every one failed) by the weak model: a ValueError's traceback from the fit before,
    after the embeddings had been computed."""
    data = tmp_path / "traffic.jsonl"
    data.write_text(
        '{"id": "c1", "prompt": "hi", "scores": {"m": 1}}\n{"id": "c2", "prompt": "yo", "scores": {"m": 1}}\n'
    )
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "a.json")]) == 1
    err = capsys.readouterr().err.splitlines()[-1]
    assert err == (
        f"tiergate train: {data}: the weak model passed every one of the 2 labelled prompts, so there is nothing to"
        " tell apart: training needs prompts of both kinds"
    )
    assert not (tmp_path / "a.json").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["report"],
        ["export-requests", "--out", "{tmp}/out.csv"],
        ["export-labels", "--out", "{tmp}/out.jsonl"],
        ["prune-ledger", "--older-than", "30d", "--dry-run"],
        ["calibrate", "--shares", "0.5,0.3,0.2"],
        ["calibrate", "--policy", "careful", "--keep-share", "0.5", "--config", "{tmp}/cascade.yaml"],
    ],
    ids=["report", "export-requests", "export-labels", "prune-ledger", "calibrate", "calibrate-keep-share"],
)
def test_a_ledger_that_is_not_there_is_one_line_and_status_1_and_stays_not_there(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """A mistyped --ledger path made an empty SQLite ledger there and reported no traffic (calibrate: a traceback)."""
    (tmp_path / "cascade.yaml").write_text(
        "models: [{name: m, litellm_model: openai/m, tier: 0}]\n"
        "default_policy: careful\npolicies:\n  careful:\n    thresholds: [0.5]\n    baseline_model: m\n"
        "    cascade: {below_score: 0.5, min_confidence: 0.5}\n"
    )
    ledger = tmp_path / "typo.sqlite3"
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv] + ["--ledger", str(ledger)]) == 1
    err = capsys.readouterr().err
    assert err == f"tiergate {argv[0]}: no SQLite ledger at {ledger}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cascade.yaml"]  # no ledger, spool or output made


@pytest.mark.parametrize(
    ("argv", "env", "says"),
    [
        (["serve", "--port", "99999"], {}, "argument --port: expected a whole number from 0 to 65535, got 99999"),
        (["serve", "--workers", "-1"], {}, "argument --workers: expected a whole number from 0 to 1024, got -1"),
        (["serve"], {"TIERGATE_PORT": "abc"}, "argument --port: expected a whole number from 0 to 65535, got 'abc'"),
    ],
)
def test_serve_refuses_a_port_or_worker_count_it_cannot_use_before_loading_anything(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: list[str], env: dict[str, str], says: str
) -> None:
    """A port past 65535 was an OverflowError traceback once the app had loaded; -1 workers served as one."""
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and says in capsys.readouterr().err


def test_a_setting_in_the_environment_that_does_not_parse_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIERGATE_LEDGER_PRUNE_EVERY_S", "-5")
    assert main(["report"]) == 1  # any command that reads the settings: here, for the ledger's path
    assert capsys.readouterr().err == (
        "tiergate report: the environment: TIERGATE_LEDGER_PRUNE_EVERY_S='-5': Input should be greater than 0\n"
    )


@pytest.mark.parametrize(
    ("rows", "extra", "says"),
    [
        ('{"id": 1, "messages": "hi"}\n', [], "in.jsonl:1: 'messages' is not a list of chat messages\n"),
        ('{"id": 1, "messages": [["user", "hi"]]}\n', [], "in.jsonl:1: 'messages' is not a list of chat messages\n"),
        ('{"id": 1, "prompt": "hi"}\n', ["--policy", "nope"], "no policy 'nope' in the policy file (it has: "),
        ('{"id": 1, "prompt": "hi"}\n', ["--output", "{tmp}/no/such/dir/out.jsonl"], "out.jsonl: cannot write: "),
    ],
    ids=["messages-a-string", "messages-not-objects", "unknown-policy", "unwritable-output"],
)
def test_classify_refuses_what_it_cannot_use_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rows: str, extra: list[str], says: str
) -> None:
    """Each was a traceback (AttributeError, KeyError, FileNotFoundError after the whole file was scored)."""
    data = tmp_path / "in.jsonl"
    data.write_text(rows)
    argv = ["classify", "--input", str(data), "--output", str(tmp_path / "out.jsonl")]
    assert main(argv + [a.replace("{tmp}", str(tmp_path)) for a in extra]) == 1
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1


def test_classify_on_a_broken_policy_file_says_where(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, cfg = tmp_path / "in.jsonl", tmp_path / "bad.yaml"
    data.write_text('{"id": 1, "prompt": "hi"}\n')
    cfg.write_text("models: []\npolicies: {}\n")
    assert main(["classify", "--input", str(data), "--output", str(tmp_path / "o.jsonl"), "--config", str(cfg)]) == 1
    assert capsys.readouterr().err.startswith(f"{cfg}: ")


@pytest.mark.parametrize("argv", [["validate-config", "config/tiergate.yaml"], ["new-key", "reader"]])
def test_a_reader_that_leaves_is_no_traceback(argv: list[str]) -> None:
    """`tiergate report | head`: the pipe closes before the command has written; Python raises BrokenPipeError at the
    write (or at the exit's flush) and printed a traceback."""
    cmd = [sys.executable, "-m", "gateway.cli", *argv]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # gone before the interpreter has even started: every write of the command fails
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1 and "Traceback" not in err and "BrokenPipe" not in err, err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (
            ["calibrate", "--shares", "0.4,,0.1", "--reference", "x.jsonl"],
            "argument --shares: expected numbers separated by commas, e.g. 0.4,0.5,0.1, got '0.4,,0.1'",
        ),
        (["check-models", "--timeout", "-1"], "argument --timeout: expected a number of seconds above 0, got '-1'"),
        (["check-models", "--timeout", "nan"], "argument --timeout: expected a number of seconds above 0, got 'nan'"),
    ],
    ids=["shares-not-numbers", "timeout-negative", "timeout-nan"],
)
def test_malformed_arguments_are_a_usage_error_not_a_traceback(
    capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    """`--shares abc` was a ValueError's traceback; `--timeout -1` timed every model out before calling it."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and capsys.readouterr().err.splitlines()[-1] == f"tiergate {argv[0]}: error: {says}"
