"""Figures for the evaluation commands: a row of panels drawn off-screen, and saving it as a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def panels(n: int, width: float, height: float) -> tuple[Any, Any]:
    """A figure with one row of `n` panels, each `width` x `height` inches; (figure, axes[0][i])."""
    import matplotlib

    matplotlib.use("Agg")  # no display here; write the file only
    import matplotlib.pyplot as plt

    return plt.subplots(1, n, figsize=(width * n, height), squeeze=False)


def save(fig: Any, axes: Any, path: Path) -> None:
    """Legend on the first panel, tight layout, written to `path`, and the figure's memory released."""
    import matplotlib.pyplot as plt

    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
