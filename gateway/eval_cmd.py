"""`tiergate eval-router`: APGR and CPT per held-out group, Tiergate's router beside the baselines, plus a plot.

For each held-out group (a RouterBench task, an MMLU subject group, any other file's task), every trainable router
is refitted without that group: no row of the same task from any source, and no row whose text appears in the
group (the sources share some prompts). Baselines: random (expected), always-weak / always-strong (the two ends of
every curve), oracle, prompt length, and logistic regression and kNN (k=40) on raw MiniLM embeddings with the
weak-model-failed label (no source handling), the usual published router recipes. "topic-oracle" is a reference,
not a router: each prompt gets its own subject's or task's mean gain on the test rows (classifiers/evaluate.py),
which shows how much of a split's APGR knowing the topic alone would buy (0.5 on a split of one task).
A last row ranks every group's prompts together, each with the scores it got while its group was held out.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from classifiers.base import Matrix
from classifiers.evaluate import Curve, Summary, curve, oracle_score, random_curve, summarise, topic_oracle_score
from classifiers.labels import Example, examples
from classifiers.splits import group_of
from classifiers.train import fit
from gateway import plots
from gateway.datasets import labelled, labelling, read_jsonl
from gateway.train_cmd import features

EMB = 384  # the first columns of the features are the raw MiniLM embedding


@dataclass(frozen=True)
class EvalRow:
    example: Example
    weak: float
    strong: float
    group: str


def canon(task: str) -> str:
    return re.sub(r"[^a-z0-9]", "", task.lower())


def eval_rows(path: Path, strong: str, weak: str) -> list[EvalRow]:
    rows = list(read_jsonl(path))
    with labelling(path):
        exs = {e.id: e for e in examples(rows, weak)}
    out = []
    for r in rows:
        sc = r.get("scores") or {}
        e = exs.get(str(r.get("id")))
        if e is not None and sc.get(strong) is not None and sc.get(weak) is not None:
            out.append(EvalRow(e, float(sc[weak]), float(sc[strong]), group_of(e.source, e.task)))
    return out


def excluded(ex: Example, group: str, held_task: str, held_texts: set[str]) -> bool:
    if ex.text in held_texts or canon(ex.task) == held_task:
        return True
    # Holding out an MMLU subject group also holds out other sources' MMLU rows (their subjects are unknown).
    return group.startswith("mmlu:") and (group_of(ex.source, ex.task) == group or canon(ex.task) == "mmlu")


def knn(train: Matrix, labels: np.ndarray, test: Matrix, k: int = 40) -> np.ndarray:
    out = np.empty(len(test))
    for s in range(0, len(test), 512):
        sims = test[s : s + 512] @ train.T
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        out[s : s + 512] = labels[top].mean(axis=1)
    return out


def _routers(pool: list[Example], xp: Matrix, tr: list[int], test: list[EvalRow], xt: Matrix) -> dict[str, np.ndarray]:
    ytr = np.asarray([pool[i].label for i in tr])
    wf = np.asarray([pool[i].weak_fail for i in tr])
    ours = fit(xp[tr], ytr.tolist(), [pool[i].source for i in tr], "eval")
    lr = LogisticRegression(C=1.0, max_iter=2000).fit(xp[tr][:, :EMB], wf)
    return {
        "tiergate-v1": np.asarray(ours.score_features(xt)),
        "logreg-embed": lr.predict_proba(xt[:, :EMB])[:, 1],
        "knn40-embed": knn(xp[tr][:, :EMB], wf.astype(float), xt[:, :EMB]),
        "length": np.asarray([len(r.example.text) for r in test], dtype=float),
        "oracle": oracle_score([r.weak for r in test], [r.strong for r in test]),
        "topic-oracle": topic_oracle_score(
            [r.example.task for r in test], [r.weak for r in test], [r.strong for r in test]
        ),
    }


def run(data: Path, extra: list[Path], strong: str, weak: str, out_dir: Path) -> int:
    test_rows = eval_rows(data, strong, weak)
    if not test_rows:
        print(f"no row of {data} has outcomes for both {strong!r} and {weak!r}", file=sys.stderr)
        return 1
    pool = [e for p in [data, *extra] for e in labelled(p)]
    xp = features(pool)
    xt = features([r.example for r in test_rows])
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# Router evaluation: {data.name}, strong = {strong}, weak = {weak}",
        "",
        f"Training pool: {', '.join(p.name for p in [data, *extra])} ({len(pool)} labelled prompts).",
        "",
        "| held-out group | n | q_weak | q_strong | router | APGR | CPT(50%) | CPT(80%) | CPT(95%) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    curves: dict[str, dict[str, Curve]] = {}
    pooled: dict[str, np.ndarray] = {}  # every router's held-out scores of every group, in test_rows' order
    pooled_rows: list[int] = []
    for g in sorted({r.group for r in test_rows}):
        idx = [i for i, r in enumerate(test_rows) if r.group == g]
        held = [test_rows[i] for i in idx]
        held_texts = {r.example.text for r in held}
        task = canon(held[0].example.task)
        tr = [i for i, e in enumerate(pool) if not excluded(e, g, task, held_texts)]
        w, s = [r.weak for r in held], [r.strong for r in held]
        if abs(np.mean(w) - np.mean(s)) < 1e-9:
            lines.append(f"| {g} | {len(held)} | {np.mean(w):.3f} | {np.mean(s):.3f} | (no quality gap) | | | | |")
            continue
        scored = _routers(pool, xp, tr, held, xt[idx])
        curves[g] = {"random": random_curve(w, s), **{k: curve(v.tolist(), w, s) for k, v in scored.items()}}
        lines.extend(_table_rows(g, len(held), curves[g]))
        pooled_rows.extend(idx)
        for name, v in scored.items():
            pooled[name] = np.concatenate([pooled.get(name, np.empty(0)), v])
        print(f"{g}: trained on {len(tr)}, tested on {len(held)}", file=sys.stderr)
    if len(curves) > 1:
        # Mixed traffic brings kinds of prompt the router never saw, side by side with each other: here every
        # group's prompts carry the scores of the routers fitted without that group, and are ranked together. What
        # a router can gain here beyond the per-group rows is the order *between* kinds ("maths goes up").
        held = [test_rows[i] for i in pooled_rows]
        w, s = [r.weak for r in held], [r.strong for r in held]
        g = "all groups, each held out"
        curves[g] = {"random": random_curve(w, s), **{k: curve(v.tolist(), w, s) for k, v in pooled.items()}}
        lines.extend(_table_rows(g, len(held), curves[g]))
    report = out_dir / "router-eval.md"
    report.write_text("\n".join(lines) + "\n")
    _plot(curves, out_dir / "router-eval.png")
    print("\n".join(lines))
    print(f"\nwrote {report} and {out_dir / 'router-eval.png'}", file=sys.stderr)
    return 0


def _table_rows(group: str, n: int, curves: dict[str, Curve]) -> list[str]:
    out = []
    for name, c in curves.items():
        sm: Summary = summarise(name, c)
        out.append(
            f"| {group} | {n} | {c.q_weak:.3f} | {c.q_strong:.3f} | {name} | {sm.apgr:.3f} | "
            f"{sm.cpt50:.1%} | {sm.cpt80:.1%} | {sm.cpt95:.1%} |"
        )
    return out


def _plot(curves: dict[str, dict[str, Curve]], path: Path) -> None:
    fig, axes = plots.panels(max(1, len(curves)), 4.2, 3.8)
    for ax, (g, cs) in zip(axes[0], curves.items(), strict=False):
        for name, c in cs.items():
            ax.plot(
                c.share * 100,
                c.quality,
                label=name,
                lw=2.2 if name == "tiergate-v1" else 1.2,
                ls="--" if name in ("random", "oracle", "topic-oracle") else "-",
            )
        ax.set_title(g, fontsize=9)
        ax.set_xlabel("calls to the strong model (%)")
        ax.set_ylabel("quality")
    plots.save(fig, axes, path)
