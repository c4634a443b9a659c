"""`tiergate calibrate`: new thresholds for one policy, from reference prompts or recent ledger traffic; or, with
`--keep-share`, its cascade's `min_confidence` from the draft confidences the ledger recorded.

It prints the change as a unified diff of the policy file; `--write` applies it. Only the `thresholds` value of
that policy is rewritten in place, so comments and layout elsewhere stay as the operator wrote them.
"""

from __future__ import annotations

import difflib
import sys
import time
from collections import Counter
from pathlib import Path

import yaml

from classifiers.calibrate import achieved_shares, min_confidence_for_keep, thresholds_for_shares
from gateway.classify import load_model
from gateway.datasets import labelled
from gateway.ledger.backends import LedgerUnavailable, migrated
from gateway.policy_file import PolicyFileError, load, parse
from gateway.train_cmd import features
from router.policy import TiergateConfig


def reference_scores(paths: list[Path], artifact: Path) -> tuple[list[float], list[float]]:
    """Scores of the reference prompts, each source weighted equally (as in training)."""
    exs = [e for p in paths for e in labelled(p)]
    if not exs:
        raise ValueError("no usable prompts in the reference files")
    scores = load_model(artifact).score_features(features(exs))
    counts = Counter(e.source for e in exs)
    return scores, [1.0 / counts[e.source] for e in exs]


def _ledger_values(url: str, column: str, condition: str, since_s: float, policy: str) -> list[float]:
    """One numeric column of this policy's requests in the window, where `condition` holds."""
    with migrated(url) as backend:  # raises LedgerUnavailable
        rows = backend.query(
            f"SELECT {column} FROM requests WHERE {column} IS NOT NULL AND {condition} AND ts >= ? AND policy = ?",
            (time.time() - since_s, policy),
        )
    return [float(r[0]) for r in rows]


def ledger_scores(url: str, since_s: float, policy: str) -> list[float]:
    return _ledger_values(url, "score", "1 = 1", since_s, policy)


def rewrite_value(text: str, keys: tuple[str, ...], rendered: str) -> str:
    """The YAML text with the value at `keys` replaced by `rendered`, located through the parser's own marks."""
    node: yaml.Node | None = yaml.compose(text)
    for key in keys:
        if not isinstance(node, yaml.MappingNode):
            raise ValueError(f"no {'.'.join(keys)} in the file")
        node = next((v for k, v in node.value if k.value == key), None)
    if node is None:
        raise ValueError(f"no {'.'.join(keys)} in the file")
    # A block list's end mark is the next key's start: end at its last item instead, keeping the line break.
    last = node.value[-1] if isinstance(node, yaml.SequenceNode) and node.value and not node.flow_style else node
    lines = text.splitlines(keepends=True)
    start = sum(len(x) for x in lines[: node.start_mark.line]) + node.start_mark.column
    end = sum(len(x) for x in lines[: last.end_mark.line]) + last.end_mark.column
    return text[:start] + rendered + text[end:]


def rewrite_thresholds(text: str, policy: str, new: list[float]) -> str:
    return rewrite_value(text, ("policies", policy, "thresholds"), "[" + ", ".join(f"{t:g}" for t in new) + "]")


def ledger_confidences(url: str, since_s: float, policy: str) -> list[float]:
    """Confidences of the drafts this policy's cascade judged (kept or escalated) in the window."""
    return _ledger_values(url, "draft_confidence", "cascade IN ('kept', 'escalated')", since_s, policy)


def _load(config: Path) -> TiergateConfig | None:
    """The policy file, or None after printing its problems."""
    try:
        return load(config)
    except PolicyFileError as e:
        print(e.lines(), file=sys.stderr)
        return None


def _show(config: Path, old_text: str, new_text: str, write: bool) -> None:
    parse(new_text, config)  # the result must still be a valid policy
    sys.stdout.writelines(
        difflib.unified_diff(old_text.splitlines(True), new_text.splitlines(True), str(config), str(config))
    )
    if write:
        config.write_text(new_text, encoding="utf-8")
        print(f"wrote {config}", file=sys.stderr)


def run_cascade(config: Path, policy: str, keep_share: float, ledger: str, since_s: float, write: bool) -> int:
    """`--keep-share`: the cascade's min_confidence that keeps that share of recently judged drafts."""
    cfg = _load(config)
    if cfg is None:
        return 1
    if policy not in cfg.policies or cfg.policies[policy].cascade is None:
        print(f"policy {policy!r} has no cascade block to calibrate", file=sys.stderr)
        return 1
    try:
        confs = ledger_confidences(ledger, since_s, policy)
        new = min_confidence_for_keep(confs, keep_share)
    except (ValueError, LedgerUnavailable) as e:
        print(f"tiergate calibrate: {e}", file=sys.stderr)
        return 1
    old_text = config.read_text(encoding="utf-8")
    new_text = rewrite_value(old_text, ("policies", policy, "cascade", "min_confidence"), f"{new:g}")
    print(
        f"# {policy}: keep {keep_share:g} of {len(confs)} drafts judged in {ledger} over the last "
        f"{since_s / 3600:g} h -> min_confidence {new:g}",
        file=sys.stderr,
    )
    for line in _keep_caveats(confs, keep_share, new):
        print(f"# warning: {line}", file=sys.stderr)
    _show(config, old_text, new_text, write)
    return 0


def run(
    config: Path,
    policy: str,
    shares: list[float],
    reference: list[Path],
    ledger: str | None,
    since_s: float,
    artifact: Path,
    write: bool,
) -> int:
    cfg = _load(config)
    if cfg is None:
        return 1
    if policy not in cfg.policies:
        print(f"unknown policy {policy!r} (known: {sorted(cfg.policies)})", file=sys.stderr)
        return 1
    tiers = len(cfg.policies[policy].thresholds) + 1
    if len(shares) != tiers:
        print(f"policy {policy!r} has {tiers} tiers: give {tiers} shares", file=sys.stderr)
        return 1
    if ledger is not None:
        try:
            scores, weights = ledger_scores(ledger, since_s, policy), None
        except LedgerUnavailable as e:
            print(f"tiergate calibrate: {e}", file=sys.stderr)
            return 1
        source = f"{len(scores)} routed requests in {ledger} from the last {since_s / 3600:g} h"
    else:
        scores, w = reference_scores(reference, artifact)
        weights, source = w, f"{len(scores)} reference prompts from {', '.join(p.name for p in reference)}"
    try:
        new = thresholds_for_shares(scores, shares, weights)
    except ValueError as e:
        print(f"tiergate calibrate: {e} ({source})", file=sys.stderr)
        return 1
    old_text = config.read_text(encoding="utf-8")
    new_text = rewrite_thresholds(old_text, policy, new)
    print(f"# {policy}: shares {shares} on {source} -> thresholds {new}", file=sys.stderr)
    for line in _caveats(scores, shares, new, weights):
        print(f"# warning: {line}", file=sys.stderr)
    _show(config, old_text, new_text, write)
    return 0


# Below this many scores a share is known to worse than +-2.5 points (one standard error of a proportion near 0.5).
FEW_SCORES = 400
# A tier's share this far from the one asked for is worth a look before the thresholds are written.
SHARE_OFF_BY = 0.05


def _few(n: int, what: str) -> list[str]:
    if n >= FEW_SCORES:
        return []
    se, enough = (0.25 / n) ** 0.5, (0.25 / FEW_SCORES) ** 0.5
    return [f"only {n} {what}: each share is known to about +-{se:.2f}; {FEW_SCORES} or more make it +-{enough:.3f}"]


def _keep_caveats(confs: list[float], keep_share: float, new: float) -> list[str]:
    """The cascade's counterpart of _caveats: too few drafts, or a share kept that ties move from the one asked."""
    out = _few(len(confs), "drafts")
    kept = sum(c >= new for c in confs) / len(confs)
    if abs(kept - keep_share) > SHARE_OFF_BY:
        out.append(
            f"on these drafts min_confidence {new:g} keeps {kept:.3f}, not {keep_share:g}: drafts that share a "
            "confidence cannot be split"
        )
    return out


def _caveats(scores: list[float], shares: list[float], new: list[float], weights: list[float] | None) -> list[str]:
    """What an operator should weigh before writing these thresholds: too few scores, or shares they do not give
    (many prompts with one score, as repeated prompts have, cannot be split between tiers)."""
    out = _few(len(scores), "scores")
    got = achieved_shares(scores, new, weights)
    if any(abs(g - want) > SHARE_OFF_BY for g, want in zip(got, shares, strict=True)):
        out.append(
            f"on these scores the new thresholds give shares {[round(g, 3) for g in got]}, not {shares}: "
            "prompts that share a score cannot be split between tiers"
        )
    return out
