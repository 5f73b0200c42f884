"""The peers benchmark's report: its section of BENCHMARKS.md leaves the others alone; targets are judged right."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from peer_report import END_MARKER, START_MARKER, Row, replace_section, targets_table  # noqa: E402


def _row(peer: str, shape: str, ms: float, fraction: float = 0.1, floor: float | None = None,
         inside: bool = True) -> Row:
    return Row(model="minilm", shape=shape, peer=peer, precision="bf16", median_ms=ms, p10_ms=ms, p90_ms=ms,
               speed_vs_best_peer=1.0, ceiling_fraction=fraction, floor_multiple=floor, max_abs_diff=None,
               min_cosine=None, inside_budget=inside)


def test_replace_section_keeps_the_other_sections(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(f"# Benchmarks\n\n{START_MARKER}\nold\n{END_MARKER}\n\n<!-- accuracy:start -->\nA\n<!-- accuracy:end -->\n")
    replace_section(path, "new table")
    text = path.read_text()
    assert f"{START_MARKER}\nnew table\n{END_MARKER}" in text
    assert "old" not in text and "<!-- accuracy:start -->\nA\n<!-- accuracy:end -->" in text
    replace_section(path, "newer")
    assert path.read_text().count(START_MARKER) == 1


def test_targets_are_judged_against_the_best_peer_ceiling_and_floor():
    rows = [
        _row("openvino-default", "1x16", 1.2), _row("onnxruntime-fp32", "1x16", 1.0),
        _row("onnxruntime-int8-dynamic", "1x16", 0.5, inside=False),  # faster, but outside the budget
        _row("inferforge (openvino-int8)", "1x16", 0.8, floor=3.0),  # 1.25x faster, 3x floor: met
        _row("openvino-default", "32x128", 80.0),
        _row("inferforge (openvino-int8)", "32x128", 70.0, fraction=0.5),  # 1.14x and 50%: not met
    ]
    table = targets_table(rows).splitlines()
    small = next(line for line in table if "| 1x16 |" in line)
    large = next(line for line in table if "| 32x128 |" in line)
    assert "| onnxruntime-fp32 1.00 | 1.25x |" in small and "| yes |" in small
    assert "onnxruntime-int8-dynamic 0.50 (0.62x)" in small
    assert "1.14x" in large and "| no |" in large
