"""report.json (the documented schema), report.md (the table) and a latency plot."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from inferforge.benchmark import LatencyStats
from inferforge.verify import VerifyResult

REPORT_SCHEMA_VERSION = 1
REFERENCE = "pytorch-fp32"
# The width tables get when the output is a file or a pipe: as wide as they need (rich would use 80 columns).
UNWRAPPED_WIDTH = 10_000


def output_console(stderr: bool = False):
    """The rich Console the command line prints on (stdout, or stderr for progress and errors).

    A terminal keeps rich's own width. A file or a pipe (`inferforge evaluate ... > out.txt`, CI logs) gets whole
    lines: text is never wrapped (soft_wrap) and tables are as wide as they need, unless COLUMNS says a width.
    """
    import os
    import sys

    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    try:
        terminal = stream.isatty()
    except (AttributeError, ValueError):  # no stream, or a closed one
        terminal = False
    if terminal:
        return Console(stderr=stderr)
    return Console(stderr=stderr, soft_wrap=True, width=None if os.environ.get("COLUMNS") else UNWRAPPED_WIDTH)


@dataclass
class VariantResult:
    """One row of the table: how a variant was built, checked and timed.

    status: "selected" | "passed" | "failed" (outside the accuracy budget) | "skipped" (runtime or CPU
    feature missing) | "error" (it could not be built or run).
    """

    name: str
    config: dict
    precision: str
    deployable: bool
    status: str = "passed"
    reason: str = ""
    files: list[str] = field(default_factory=list)
    build_seconds: float = 0.0
    check: VerifyResult | None = None
    latency: dict[str, LatencyStats] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        return self.status in ("passed", "selected")

    def to_dict(self) -> dict:
        data = asdict(self)
        data["check"] = self.check.to_dict() if self.check else None
        data["latency"] = {shape: stats.to_dict() for shape, stats in self.latency.items()}
        return data


def report_dict(*, source: str, task: str, output: str, machine: dict, threads: int, shapes: list[str],
                optimize_for: str, budget: dict, selected: str | None, rows: list[VariantResult],
                validation: dict, extra: dict | None = None) -> dict:
    """The report.json document. Latencies are milliseconds; throughput is sequences per second."""
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "source": source,
        "task": task,
        "output": output,
        "machine": machine,
        "threads": threads,
        "shapes": shapes,
        "optimize_for": optimize_for,
        "budget": budget,
        "validation": validation,
        "reference": REFERENCE,
        "selected": selected,
        "variants": [row.to_dict() for row in rows],
        **(extra or {}),
    }


def _speedup(row: VariantResult, reference: VariantResult | None, shape: str) -> str:
    if reference is None or shape not in row.latency or shape not in reference.latency:
        return ""
    return f" ({reference.latency[shape].p50_ms / row.latency[shape].p50_ms:.1f}x)"


def table_rows(rows: list[VariantResult], shapes: list[str]) -> tuple[list[str], list[list[str]], list[str]]:
    """Header, cells and numbered notes (why a variant failed or was skipped), shared by the Markdown
    report and the terminal table."""
    reference = next((r for r in rows if r.name == REFERENCE and r.latency), None)
    scored = any("accuracy" in r.extra for r in rows)
    header = ["variant", "precision", "status", "max abs diff", "agreement"]
    header += ["task score", "change (points)"] if scored else []
    header += [f"p50 ms {s}" for s in shapes]
    cells, notes = [], []
    for row in rows:
        check = row.check
        status = row.status
        if row.reason:
            notes.append(f"[{len(notes) + 1}] {row.name}: {row.reason}")
            status += f" [{len(notes)}]"
        if row.extra.get("kept_fp32"):
            notes.append(f"[{len(notes) + 1}] {row.name} keeps in fp32: {', '.join(row.extra['kept_fp32'])}")
        accuracy = row.extra.get("accuracy")
        score_cells = []
        if scored:
            score_cells = [f"{accuracy['value']:.2f} {accuracy.get('metric', '')}" if accuracy else "",
                           f"{round(-accuracy['drop_points'], 2) + 0.0:+.2f}" if accuracy else ""]
        cells.append([
            ("* " if row.status == "selected" else "") + row.name,
            row.precision,
            status,
            f"{check.max_abs_diff:.2e}" if check else "",
            f"{check.agreement:.4f} ({check.agreement_metric})" if check else "",
            *score_cells,
            *[f"{row.latency[s].p50_ms:.2f}{_speedup(row, reference, s)}" if s in row.latency else "" for s in shapes],
        ])
    return header, cells, notes


def _eval_data_lines(data: dict | None) -> list[str]:
    """What labelled data judged the variants (report.json `eval_data`), as a paragraph of report.md."""
    if not data:
        return []
    columns = ", ".join(f"{role} `{name}`" for role, name in data.get("columns", {}).items()
                        if role != "detected" and name)
    split = f", split {data['split']}" if data.get("split") else ""
    note = (data.get("labels") or {}).get("note")
    text = (f"Labelled data: {data.get('source')} ({data.get('format')}{split}), {data.get('rows')} rows; "
            f"columns: {columns}." + (f" {note}" if note else ""))
    return [text, ""]


def markdown_report(report: dict, rows: list[VariantResult]) -> str:
    shapes = report["shapes"]
    header, cells, notes = table_rows(rows, shapes)
    machine = report["machine"]
    isa = ", ".join(k for k, v in machine["isa"].items() if v) or "none detected"
    ties = report.get("selection_ties")
    why = f"fastest passing variant at {report['optimize_for']}"
    if ties:
        why = (f"{', '.join(ties['tied'])} were within {ties['within']:.0%} of each other at {report['optimize_for']}, "
               "the noise of one run: the tie went to the fastest over all shapes")
    lines = [
        f"# inferforge report: {report['source']} ({report['task']})",
        "",
        f"Selected variant: **{report['selected'] or 'none passed the accuracy budget'}** ({why}).",
        "",
        *(line for warning in report.get("warnings") or () for line in (f"**Warning:** {warning}", "")),
        f"Accuracy budget: difference <= {report['budget']['atol']} (scaled by max(1, |reference|)), "
        f"agreement >= {report['budget']['min_agreement']}; checked on {report['validation']['count']} "
        f"{report['validation']['source']} texts against PyTorch fp32.",
        "",
        *_eval_data_lines(report.get("eval_data")),
        "p50 latency in milliseconds, speed-up against PyTorch fp32 in brackets.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in cells]
    lines += [""] + [f"- {note}" for note in notes]
    lines += [
        "",
        f"Machine: {machine['cpu_model']}, {machine['cores']} cores, {report['threads']} threads; ISA: {isa}.",
        "Libraries: " + ", ".join(f"{k} {v}" for k, v in machine["libraries"].items()) + ".",
        "",
        "![latency per shape](latency.png)",
        "",
    ]
    return "\n".join(lines)


def plot_latency(rows: list[VariantResult], shapes: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    timed = [r for r in rows if r.latency]
    fig, axes = plt.subplots(1, len(shapes), figsize=(4.5 * len(shapes), 3.8), squeeze=False)
    for ax, shape in zip(axes[0], shapes):
        names = [r.name for r in timed if shape in r.latency]
        values = [r.latency[shape].p50_ms for r in timed if shape in r.latency]
        colors = ["tab:green" if r.status == "selected" else ("tab:gray" if not r.usable else "tab:blue")
                  for r in timed if shape in r.latency]
        ax.barh(np.arange(len(names)), values, color=colors)
        ax.set_yticks(np.arange(len(names)), names, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("p50 latency (ms)")
        ax.set_title(f"batch x sequence {shape}")
    fig.suptitle("inferforge: latency per variant (green: selected, gray: outside budget)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_reports(folder: Path, report: dict, rows: list[VariantResult]) -> None:
    (folder / "report.json").write_text(json.dumps(report, indent=2))
    (folder / "report.md").write_text(markdown_report(report, rows))
    plot_latency(rows, report["shapes"], folder / "latency.png")
