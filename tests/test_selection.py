"""Selection: the fastest variant inside the budget at the target shape, noise-level ties told apart."""

from __future__ import annotations

from inferforge.benchmark import LatencyStats, Shape
from inferforge.pipeline import SELECTION_TIE, select_variant, selection
from inferforge.report import VariantResult


def row(name: str, status: str = "passed", deployable: bool = True, **p50: float) -> VariantResult:
    latency = {shape.replace("_", "x").lstrip("s"): LatencyStats(ms, ms, ms, ms, 1000 / ms, 10) for shape, ms in p50.items()}
    return VariantResult(name=name, config={}, precision="fp32", deployable=deployable, status=status, latency=latency)


TARGET = Shape(1, 16)


def test_the_fastest_passing_variant_at_the_target_shape():
    rows = [row("pytorch-fp32", deployable=False, s1_16=1.0, s1_128=1.0),
            row("int8", status="failed", s1_16=2.0, s1_128=2.0),
            row("a", s1_16=10.0, s1_128=30.0),
            row("b", s1_16=12.0, s1_128=20.0)]
    assert select_variant(rows, TARGET) == "a"  # b is 20 % slower at 1x16: no tie, its 1x128 does not count
    assert selection(rows, TARGET) == ("a", ["a"])
    assert select_variant([rows[0], rows[1]], TARGET) is None


def test_a_noise_level_tie_goes_to_the_fastest_over_all_shapes():
    near = 10.0 * (1 + SELECTION_TIE * 0.8)
    rows = [row("ort-fp32", s1_16=10.0, s1_128=72.3, s32_128=2035.0),
            row("ort-fused", s1_16=near, s1_128=32.9, s32_128=1880.0),
            row("openvino-fp32", s1_16=12.7, s1_128=20.0, s32_128=900.0)]  # faster elsewhere, but no tie at 1x16
    assert selection(rows, TARGET) == ("ort-fused", ["ort-fp32", "ort-fused"])
    # Over the shapes both were timed at only.
    rows[1].latency.pop("32x128")
    rows[0].latency["1x128"] = LatencyStats(30.0, 30.0, 30.0, 30.0, 33.0, 10)
    assert select_variant(rows, TARGET) == "ort-fp32"


def test_no_servable_variant_says_what_each_missed_and_what_to_change(tmp_path):
    from inferforge.pipeline import no_servable_variant
    from inferforge.verify import AccuracyBudget, VerifyResult

    int8 = row("ort-int8-dynamic", status="failed")
    int8.check = VerifyResult(True, 0.01, 0.01, 1.0, "top1")
    int8.reason = "loses 2.50 points of accuracy on 200 labelled rows (budget 1)"
    rows = [row("pytorch-fp32", deployable=False), int8,
            row("openvino-bf16", status="skipped"), row("pytorch-bf16", status="failed", deployable=False)]
    rows[2].reason = "the CPU has neither AVX512-BF16 nor AMX"
    message = str(no_servable_variant(rows, AccuracyBudget(0.05, 0.98), tmp_path / "out", max_accuracy_drop=1.0))
    assert message == (f"No variant the output folder could serve passed against PyTorch fp32, so {tmp_path / 'out'} "
                       "was not written: ort-int8-dynamic failed (loses 2.50 points of accuracy on 200 labelled rows "
                       "(budget 1)); openvino-bf16 skipped (the CPU has neither AVX512-BF16 nor AMX); raise "
                       "--max-accuracy-drop (now 1), or choose other --variants (e.g. ort-fp32, the exported graph "
                       "as it is).")
