"""Tables, targets and the plot of a peers run, and the BENCHMARKS.md section between markers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

START_MARKER = "<!-- peers:start -->"
END_MARKER = "<!-- peers:end -->"
INFERFORGE_PREFIX = "inferforge"

# The targets of issue 5.
TARGET_SPEEDUP = 1.2
TARGET_CEILING_FRACTION = 0.60
TARGET_FLOOR_MULTIPLE = 4.0


@dataclass(frozen=True)
class Row:
    model: str
    shape: str
    peer: str
    precision: str
    median_ms: float
    p10_ms: float
    p90_ms: float
    speed_vs_best_peer: float  # median of the fastest peer inside the budget / this median (> 1: faster)
    ceiling_fraction: float  # achieved matrix-product rate / measured ceiling of `precision`
    floor_multiple: float | None  # median / weight-reading floor, batch 1 only
    max_abs_diff: float | None
    min_cosine: float | None
    idle_before: float = 1.0  # idle fraction of the CPUs just before this model x shape was timed
    inside_budget: bool = True  # inside inferforge's default accuracy budget for the task (the reference is)

    @property
    def is_inferforge(self) -> bool:
        return self.peer.startswith(INFERFORGE_PREFIX)


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def results_table(rows: list[Row]) -> str:
    lines = [
        "| model | shape | variant | precision | median ms (p10–p90) | speed vs best peer in budget | % of ceiling | × weight floor | max abs diff | min cosine | in budget |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        name = f"**{r.peer}**" if r.is_inferforge else r.peer
        lines.append(
            f"| {r.model} | {r.shape} | {name} | {r.precision} | {r.median_ms:.2f} ({r.p10_ms:.2f}–{r.p90_ms:.2f}) "
            f"| {r.speed_vs_best_peer:.2f}x | {100 * r.ceiling_fraction:.0f}% | {_fmt(r.floor_multiple, '.1f')} "
            f"| {_fmt(r.max_abs_diff, '.1e')} | {_fmt(r.min_cosine, '.5f')} | {'yes' if r.inside_budget else 'no'} |"
        )
    return "\n".join(lines)


def targets_table(rows: list[Row]) -> str:
    """inferforge against the fastest peer inside the same accuracy budget (and, for the record, the
    fastest peer at any accuracy)."""
    lines = [
        f"| model | shape | inferforge ms | best peer inside the budget | speedup (target ≥{TARGET_SPEEDUP}x) | best peer at any accuracy | % of ceiling (target ≥{TARGET_CEILING_FRACTION:.0%} at 32x128) | × floor (target ≤{TARGET_FLOOR_MULTIPLE:.0f} at 1x16) | met | idle |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    points = sorted({(r.model, r.shape) for r in rows}, key=lambda p: (p[0], _shape_key(p[1])))
    for model, shape in points:
        at_point = [r for r in rows if r.model == model and r.shape == shape]
        ours = [r for r in at_point if r.is_inferforge]
        peers = [r for r in at_point if not r.is_inferforge]
        fair = [r for r in peers if r.inside_budget]
        if not ours or not fair:
            lines.append(f"| {model} | {shape} | — | — | — | — | — | — | no inferforge result | — |")
            continue
        mine, best, fastest = ours[0], min(fair, key=lambda r: r.median_ms), min(peers, key=lambda r: r.median_ms)
        speedup = best.median_ms / mine.median_ms
        met = [speedup >= TARGET_SPEEDUP, mine.inside_budget]
        if shape.startswith("32x"):
            met.append(mine.ceiling_fraction >= TARGET_CEILING_FRACTION)
        if shape == "1x16" and mine.floor_multiple is not None:
            met.append(mine.floor_multiple <= TARGET_FLOOR_MULTIPLE)
        lines.append(
            f"| {model} | {shape} | {mine.median_ms:.2f} | {best.peer} {best.median_ms:.2f} | {speedup:.2f}x "
            f"| {fastest.peer} {fastest.median_ms:.2f} ({fastest.median_ms / mine.median_ms:.2f}x) "
            f"| {100 * mine.ceiling_fraction:.0f}% ({mine.precision}) | {_fmt(mine.floor_multiple, '.1f')} "
            f"| {'yes' if all(met) else 'no'} | {mine.idle_before:.2f} |"
        )
    return "\n".join(lines)


def _shape_key(shape: str) -> tuple[int, int]:
    batch, seq = shape.split("x")
    return int(batch), int(seq)


def plot(rows: list[Row], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    models = list(dict.fromkeys(r.model for r in rows))
    figure, axes = plt.subplots(1, len(models), figsize=(7.5 * len(models), 5.8), squeeze=False)
    for axis, model in zip(axes[0], models):
        model_rows = [r for r in rows if r.model == model]
        shapes = sorted({r.shape for r in model_rows}, key=_shape_key)
        label = {r.peer: ("inferforge (selected per shape)" if r.is_inferforge else r.peer) for r in model_rows}
        peers = list(dict.fromkeys(label[r.peer] for r in model_rows))
        width = 0.8 / len(peers)
        for index, peer in enumerate(peers):
            values = [next((r.median_ms for r in model_rows if label[r.peer] == peer and r.shape == s), np.nan)
                      for s in shapes]
            positions = np.arange(len(shapes)) + (index - (len(peers) - 1) / 2) * width
            ours = peer.startswith(INFERFORGE_PREFIX)  # drawn in black
            bars = axis.bar(positions, values, width, label=peer, color="black" if ours else None,
                            edgecolor="black", linewidth=0.4)
            for bar, shape in zip(bars, shapes):  # hatched: outside the accuracy budget at that shape
                row = next((r for r in model_rows if label[r.peer] == peer and r.shape == shape), None)
                if row is not None and not row.inside_budget:
                    bar.set_hatch("///")
        axis.set_yscale("log")
        axis.set_xticks(np.arange(len(shapes)), [f"batch x seq {s}" for s in shapes])
        axis.set_ylabel("median latency, ms (log scale, lower is better)")
        axis.set_title(f"{model} (hatched: outside the accuracy budget)")
        axis.grid(axis="y", which="both", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=5, fontsize=8, frameon=False)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout(rect=(0, 0.09, 1, 1))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def replace_section(markdown_path: Path, section: str) -> None:
    """Writes `section` between the peers markers, creating the file or the markers if missing."""
    block = f"{START_MARKER}\n{section.strip()}\n{END_MARKER}"
    text = markdown_path.read_text() if markdown_path.exists() else "# Benchmarks\n"
    if START_MARKER in text and END_MARKER in text:
        head, rest = text.split(START_MARKER, 1)
        tail = rest.split(END_MARKER, 1)[1]
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    markdown_path.write_text(text)
