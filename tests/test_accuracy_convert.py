"""`convert --eval-data --calibration-data --max-accuracy-drop`: accuracy decides the selection."""

from __future__ import annotations

import json

import inferforge


def test_convert_selects_inside_the_accuracy_budget(sentiment_tiny, tmp_path):
    tuned, _, test_csv = sentiment_tiny
    result = inferforge.convert(
        str(tuned), "text-classification", tmp_path / "out",
        variants="ort-fp32,ort-int8-dynamic,ort-int8-static-minmax", shapes="1x16", nb_measures=3, warmup=1,
        threads=1, eval_data=test_csv, calibration_data=tuned / "calib.txt", max_accuracy_drop=0.0,
    )
    report = json.loads((result.output / "report.json").read_text())
    accuracy = report["accuracy"]
    assert accuracy["rows"] == 2000 and accuracy["max_drop"] == 0.0
    by_name = {row.name: row for row in result.rows}
    reference = by_name["pytorch-fp32"].extra["accuracy"]["value"]
    assert by_name["ort-fp32"].extra["accuracy"]["value"] == reference  # fp32 ONNX scores exactly like PyTorch
    for row in result.rows:
        if row.status in ("skipped", "error"):
            continue
        drop = row.extra["accuracy"]["drop_points"]
        if row.precision != "fp32" and drop > 0:
            assert row.status == "failed" and "points" in row.reason
    selected = by_name[result.selected]
    assert selected.extra["accuracy"]["drop_points"] <= 0.0
    markdown = (result.output / "report.md").read_text()
    assert "task score" in markdown and "change (points)" in markdown
    # The folder serves the selection; a searched int8 variant, if any, is stored and loadable.
    for row in result.rows:
        if row.extra.get("kept_fp32"):
            assert row.check is not None  # the searched variant is verified like every other
            model = inferforge.load(result.output, variant=row.name)
            assert model.predict(["A warm and funny film."])[0]["label"]
