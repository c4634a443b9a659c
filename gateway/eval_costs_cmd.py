"""`tiergate eval-costs`: routing among every priced model of a file (RouterBench's 11), cost against quality.

Routers give each model a predicted success probability per prompt and send the prompt to the cheapest model
they trust at a minimum quality q (classifiers/costquality.py); sweeping q gives a cost-quality curve. Per
held-out split (RouterBench's own test rows, then each task left out), with everything fitted without it:

- tiergate-v1: the shipped recipe (classifiers/train.py, all training files) gives a difficulty score; one
  logistic curve per model, fitted on the split's training rows, turns it into that model's success probability;
- logreg-embed / knn40-embed: per model, logistic regression / the mean outcome of the 40 nearest training
  prompts, on raw MiniLM embeddings (the published kNN / MLP router recipes);
- length: per model, a logistic curve on the prompt's log length;
- single models, their hull (what mixing models at random reaches: the "zero router"), and the oracle.

Reported: AIQ (mean quality over the cost range of the single models), the cost to match the reference model's
quality, and a cost-quality plot.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from classifiers.base import Matrix
from classifiers.costquality import Mat, Point, aiq, cost_to_match, hull, oracle, singles, sweep, utility_sweep
from classifiers.labels import Example, examples
from classifiers.train import fit
from gateway import plots
from gateway.datasets import labelled, labelling, read_jsonl
from gateway.eval_cmd import EMB, canon, excluded, knn
from gateway.train_cmd import features


@dataclass(frozen=True)
class Table:
    rows: list[Example]
    models: list[str]
    outcome: Mat  # prompts x models, 0..1
    cost: Mat  # prompts x models, USD per call
    task: list[str]
    test_row: list[bool]


def load_table(path: Path) -> Table:
    raw = list(read_jsonl(path))
    with labelling(path):
        exs = {e.id: e for e in examples(raw)}
    models = sorted(
        set.intersection(*[set((r.get("scores") or {}).keys()) & set((r.get("cost_usd") or {}).keys()) for r in raw])
    )
    # A row counts only with every model's outcome and cost (RouterBench lacks some for 10 of 3,164 prompts).
    keep = [
        r
        for r in raw
        if str(r.get("id")) in exs
        and all(r["scores"].get(m) is not None and r["cost_usd"].get(m) is not None for m in models)
    ]
    return Table(
        [exs[str(r["id"])] for r in keep],
        models,
        np.asarray([[float(r["scores"][m]) for m in models] for r in keep]),
        np.asarray([[float(r["cost_usd"][m]) for m in models] for r in keep]),
        [exs[str(r["id"])].task for r in keep],
        [str(r.get("orig_split", "")).endswith("test") for r in keep],
    )


def _per_model(x_tr: Matrix, y_tr: Mat, x_te: Matrix, c: float = 1.0) -> Mat:
    """One logistic regression per model column (a constant where the training outcomes do not vary)."""
    out = np.empty((len(x_te), y_tr.shape[1]))
    for j in range(y_tr.shape[1]):
        y = (y_tr[:, j] >= 0.5).astype(int)
        if y.min() == y.max():
            out[:, j] = float(y[0])
        else:
            out[:, j] = LogisticRegression(C=c, max_iter=2000).fit(x_tr, y).predict_proba(x_te)[:, 1]
    return out


def routers(
    t: Table, tr: list[int], te: list[int], pool: list[Example], xp: Matrix, pool_tr: list[int], xt: Matrix
) -> dict[str, Mat]:
    ours = fit(xp[pool_tr], [pool[i].label for i in pool_tr], [pool[i].source for i in pool_tr], "eval")
    s = np.asarray(ours.score_features(xt))[:, None]
    length = np.log1p(np.asarray([len(e.text) for e in t.rows], dtype=float))[:, None]
    y = t.outcome[tr]
    return {
        "tiergate-v1": _per_model(s[tr], y, s[te]),
        "logreg-embed": _per_model(xt[tr, :EMB], y, xt[te, :EMB]),
        "knn40-embed": np.stack([knn(xt[tr, :EMB], y[:, j], xt[te, :EMB]) for j in range(y.shape[1])], axis=1).astype(
            np.float64
        ),
        "length": _per_model(length[tr], y, length[te]),
    }


def evaluate_split(
    t: Table, name: str, te: list[int], scored: dict[str, Mat], reference: str
) -> tuple[list[str], dict[str, list[Point]]]:
    out, cost = t.outcome[te], t.cost[te]
    rows = np.arange(len(te))
    cheapest = np.argmin(cost, axis=1)
    floor = Point(float(cost[rows, cheapest].mean()), float(out[rows, cheapest].mean()))
    single = singles(out, cost)
    c_lo, c_hi = min(p.cost for p in single), max(p.cost for p in single)
    ref = single[t.models.index(reference)]
    curves: dict[str, list[Point]] = {"oracle": oracle(out, cost), "single models (random mix)": single}
    # Each router may use either rule: the gateway's (cheapest model trusted at q) or RouterBench's (max p - λ·cost).
    curves.update({k: sweep(p, out, cost) + utility_sweep(p, out, cost) for k, p in scored.items()})
    lines = []
    for router, pts in curves.items():
        h = hull(pts, floor)
        match = cost_to_match(h, ref.quality)
        shown = "never" if match is None else f"${match * 1000:.3f} ({match / ref.cost:.0%})"
        lines.append(
            f"| {name} | {len(te)} | {router} | {aiq(h, c_lo, c_hi):.4f} | {shown} | {max(p.quality for p in h):.3f} |"
        )
    return lines, curves


def run(data: Path, extra: list[Path], reference: str, out_dir: Path) -> int:
    t = load_table(data)
    if reference not in t.models:
        print(f"{reference!r} is not among the priced models of {data}: {t.models}", file=sys.stderr)
        return 1
    pool = [e for p in [data, *extra] for e in labelled(p)]
    xp, xt = features(pool), features(t.rows)
    test = [i for i, v in enumerate(t.test_row) if v]
    splits: list[tuple[str, list[int], str | None]] = [("original test rows", test, None)]
    for name in sorted(set(t.task)):
        splits.append((f"task {name} held out", [i for i, x in enumerate(t.task) if x == name], name))
    lines = [
        f"# Cost-quality routing over {len(t.models)} models: {data.name}, reference {reference}",
        "",
        "| split | n | router | AIQ | cost to match the reference (per 1k prompts; share of its cost) | best quality |",
        "|---|---|---|---|---|---|",
    ]
    panels: dict[str, dict[str, list[Point]]] = {}
    for name, te, task in splits:
        held = set(te)
        held_texts = {t.rows[i].text for i in te}
        if task is None:  # RouterBench's own split: its training rows, and no held-out text anywhere in the pool
            tr = [i for i in range(len(t.rows)) if i not in held]
            pool_tr = [i for i, e in enumerate(pool) if e.text not in held_texts]
        else:  # the whole task is unseen: no row of it from any source
            tr = [i for i in range(len(t.rows)) if t.task[i] != task]
            pool_tr = [i for i, e in enumerate(pool) if not excluded(e, f"routerbench:{task}", canon(task), held_texts)]
        scored = routers(t, tr, te, pool, xp, pool_tr, xt)
        split_lines, curves = evaluate_split(t, name, te, scored, reference)
        lines += split_lines
        panels[name] = curves
        print(
            f"{name}: {len(tr)} training rows ({len(pool_tr)} in the difficulty pool), {len(te)} held out",
            file=sys.stderr,
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "cost-quality.md").write_text("\n".join(lines) + "\n")
    _plot(panels, t, out_dir / "cost-quality.png")
    print("\n".join(lines))
    print(f"\nwrote {out_dir / 'cost-quality.md'} and {out_dir / 'cost-quality.png'}", file=sys.stderr)
    return 0


def _plot(panels: dict[str, dict[str, list[Point]]], t: Table, path: Path) -> None:
    fig, axes = plots.panels(len(panels), 4.4, 3.9)
    for ax, (name, curves) in zip(axes[0], panels.items(), strict=False):
        for router, pts in curves.items():
            if router == "single models (random mix)":
                ax.scatter(
                    [p.cost * 1000 for p in pts], [p.quality for p in pts], s=14, c="grey", label="single models"
                )
                continue
            h = hull(pts, min(pts, key=lambda p: p.cost))
            style: dict[str, Any] = {"lw": 2.2} if router == "tiergate-v1" else {"lw": 1.1}
            if router == "oracle":
                style["ls"] = "--"
            ax.plot([p.cost * 1000 for p in h], [p.quality for p in h], label=router, **style)
        ax.set_xscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("USD per 1k prompts (log)")
        ax.set_ylabel("quality")
    plots.save(fig, axes, path)
