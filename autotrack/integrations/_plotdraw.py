"""The evaluation plots' PNGs, drawn in a process of their own (``python _plotdraw.py``, started by
:mod:`autotrack.integrations._evalplots`): matplotlib's drawing holds the GIL for ~0.1 s a figure,
which a thread would take from the training. This file imports nothing of autotrack (it is run by
path, so the worker does not import the package either): numpy and matplotlib only.

Protocol: one JSON object a line on stdin, ``{"id": n, "doc": {...}}``; one a line on stdout,
``{"id": n, "png": "<base64>"}`` or ``{"id": n, "error": "..."}``. EOF on stdin ends it.
"""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

import numpy as np


def render_png(doc: dict[str, Any]) -> bytes:
    """One plot's PNG, drawn on a Figure of its own with the Agg canvas (no pyplot, no global
    matplotlib state)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    plot = doc["plot"]
    labels = [str(v) for v in doc["labels"]]
    if plot == "confusion_matrix":
        k = len(labels)
        side = min(9.0, 3.2 + 0.35 * k)
        fig = Figure(figsize=(side + 0.8, side), dpi=80)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        matrix = np.asarray([[_float(v) for v in row] for row in doc["matrix"]], dtype=float)
        image = ax.imshow(matrix, cmap="Blues", interpolation="nearest")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        if k <= 20:
            top = np.nanmax(matrix) if matrix.size else 0
            for i in range(k):
                for j in range(k):
                    v = matrix[i, j]
                    ax.text(
                        j,
                        i,
                        f"{v:.0f}" if float(v).is_integer() else f"{v:.3g}",
                        ha="center",
                        va="center",
                        fontsize=9,
                        color="white" if top and v > top / 2 else "black",
                    )
        ax.set_xticks(range(k), labels if k <= 30 else [""] * k, rotation=45 if k > 6 else 0)
        ax.set_yticks(range(k), labels if k <= 30 else [""] * k)
        ax.set_xlabel("predicted label")
        ax.set_ylabel("true label")
        ax.set_title(f"{doc.get('data', '')} confusion matrix")
    else:
        fig = Figure(figsize=(4.8, 4.2), dpi=80)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        roc = plot == "roc_curve"
        for curve in doc["curves"]:
            xs = [_float(v) for v in curve["fpr" if roc else "recall"]]
            ys = [_float(v) for v in curve["tpr" if roc else "precision"]]
            score = curve["auc" if roc else "average_precision"]
            name = "" if doc.get("pos_label") is not None else f"{curve['label']}: "
            ax.plot(
                xs,
                ys,
                linewidth=1.5,
                drawstyle="default" if roc else "steps-post",
                label=f"{name}{'AUC' if roc else 'AP'} {_float(score):.3f}",
            )
        if roc:
            ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("false positive rate" if roc else "recall")
        ax.set_ylabel("true positive rate" if roc else "precision")
        positive = f" of {doc['pos_label']}" if doc.get("pos_label") is not None else " (one-vs-rest)"
        ax.set_title(
            f"{doc.get('data', '')} {'ROC' if roc else 'precision-recall'}{positive}",
            fontsize=10,
        )
        if doc["curves"]:
            ax.legend(loc="lower right" if roc else "lower left", fontsize=8)
        # fixed margins: the axes always run 0..1 with the same labels, and tight_layout (a third
        # of the drawing time) would measure every tick label to arrive at these
        fig.subplots_adjust(left=0.14, right=0.97, bottom=0.12, top=0.92)
    if plot == "confusion_matrix":
        fig.tight_layout()  # class names of any length on both axes
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


def _float(value: Any) -> float:
    return float(value)  # "Infinity" / "NaN" as written by _num read back too


def main() -> None:
    out = sys.stdout
    for line in sys.stdin:
        try:
            job = json.loads(line)
        except ValueError:
            continue
        try:
            reply = {
                "id": job["id"],
                "png": base64.b64encode(render_png(job["doc"])).decode("ascii"),
            }
        except Exception as exc:  # noqa: BLE001 - told to the parent, which reports it
            reply = {"id": job.get("id"), "error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
