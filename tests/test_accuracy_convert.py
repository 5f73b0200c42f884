"""`convert --eval-data --calibration-data --max-accuracy-drop`: accuracy decides the selection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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


def _sst2_folder(tmp_path):
    """A tiny text classifier and a DatasetDict folder (train, validation) whose class names are in the other
    order than the model's labels, with two validation rows against the model: (model, folder, gold, predicted)."""
    import pyarrow as pa
    import torch
    import transformers

    from tiny_models import build_tiny_model

    hf = build_tiny_model(tmp_path / "hf", "bert", "text-classification")  # labels NEGATIVE, POSITIVE
    texts = ["the movie was great", "a terrible boring film", "Alice met Bob in Paris", "it rained all day",
             "the soup was cold", "a fine summer evening"]
    tokenizer = transformers.AutoTokenizer.from_pretrained(hf)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(hf).eval()
    with torch.no_grad():
        predicted = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits.argmax(-1).tolist()
    gold = [1 - p if i in (0, 1) else p for i, p in enumerate(predicted)]  # two rows against the model
    names = ["positive", "negative"]  # the dataset's order is not the model's
    features = {"sentence": {"dtype": "string", "_type": "Value"}, "label": {"names": names, "_type": "ClassLabel"}}
    data = tmp_path / "sst2"
    data.mkdir()
    (data / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "validation"]}))
    for split, rows, labels in (("train", texts[:1], [0]), ("validation", texts, [1 - g for g in gold])):
        table = pa.table({"sentence": rows, "label": labels}).replace_schema_metadata(
            {b"huggingface": json.dumps({"info": {"features": features}})})
        (data / split).mkdir()
        with pa.OSFile(str(data / split / "data-00000-of-00001.arrow"), "wb") as sink, \
                pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        (data / split / "state.json").write_text(json.dumps({"_data_files": [{"filename": "data-00000-of-00001.arrow"}],
                                                             "_split": split}))
    return hf, data, gold, predicted


def test_convert_reads_a_dataset_folder_once_and_report_json_records_it(tmp_path, monkeypatch):
    """`convert --eval-data FOLDER --eval-split S` on a DatasetDict folder: read once (before the model loads),
    scored with the class names mapped to the model's ids, and report.json says what was used."""
    from typer.testing import CliRunner

    from inferforge import labelled_data
    from inferforge.cli import app

    hf, data, gold, predicted = _sst2_folder(tmp_path)
    names = ["positive", "negative"]
    reads = []
    real = labelled_data._labelled
    monkeypatch.setattr(labelled_data, "_labelled", lambda *args, **kwargs: reads.append(args[1]) or real(*args, **kwargs))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["convert", str(hf), "--task", "text-classification", "--output", str(out),
                                      "--variants", "ort-fp32", "--shapes", "1x8", "--nb-measures", "2", "--threads", "1",
                                      "--eval-data", str(data), "--eval-split", "validation"])
    assert result.exit_code == 0, result.output
    assert reads == [data]  # the CLI read it, the conversion scored those rows
    output = " ".join(result.output.split())
    assert f"--eval-data {data} (split 'validation'): 6 rows; columns: text 'sentence', label 'label'" in output
    assert "note: label ids mapped through the dataset's class names to the model's labels: 0 positive -> 1 POSITIVE" in output
    report = json.loads((out / "report.json").read_text())
    used = report["eval_data"]
    assert (used["source"], used["split"], used["rows"], used["format"]) == (str(data), "validation", 6, "Arrow")
    assert used["columns"] == {"text": "sentence", "pair": None, "label": "label", "detected": ["text", "label"]}
    assert used["class_names"] == names and used["labels"]["how"] == ["class-names"]
    assert [(p["dataset_name"], p["model_label"]) for p in used["labels"]["pairs"]] == [("positive", "POSITIVE"),
                                                                                       ("negative", "NEGATIVE")]
    expected = 100.0 * sum(g == p for g, p in zip(gold, predicted)) / len(gold)
    by_name = {v["name"]: v for v in report["variants"]}
    assert expected == pytest.approx(100.0 * 4 / 6)  # taking the ids as the model's would give 33.3
    assert by_name["pytorch-fp32"]["extra"]["accuracy"]["value"] == pytest.approx(expected, abs=1e-9)
    assert by_name["ort-fp32"]["extra"]["accuracy"]["value"] == pytest.approx(expected, abs=1e-9)
    markdown = " ".join((out / "report.md").read_text().split())
    assert f"Labelled data: {data} (Arrow, split validation), 6 rows; columns: text `sentence`, label `label`." in markdown
    assert "0 positive -> 1 POSITIVE" in markdown


def test_convert_with_a_corrupt_parquet_stops_before_the_model_loads(tmp_path):
    import os
    import subprocess
    import sys

    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "test.parquet"
    pq.write_table(pa.table({"text": ["a", "b"], "label": [0, 1]}), path)
    path.write_bytes(path.read_bytes()[:-20])  # a download cut short
    result = subprocess.run([sys.executable, "-m", "inferforge", "convert", str(tmp_path / "no-model-needed"), "--task",
                             "text-classification", "--output", str(tmp_path / "out"), "--eval-data", str(path)],
                            capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "300"},
                            timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{path} is not a readable Parquet file (no Parquet footer where the file ends" in " ".join(result.stderr.split())
    assert not (tmp_path / "out").exists()


def _cli_report(args: list[str]) -> dict:
    from typer.testing import CliRunner

    from inferforge.cli import app

    result = CliRunner().invoke(app, ["convert", *map(str, args)])
    assert result.exit_code == 0, result.output
    return json.loads((Path(args[args.index("--output") + 1]) / "report.json").read_text())


def test_python_convert_eval_split_scores_what_the_cli_scores(tmp_path):
    """inferforge.convert(..., eval_data=FOLDER, eval_split="validation[1:5]") reads the same rows of the same split
    and gives the same accuracy, report and selection as `convert --eval-data FOLDER --eval-split 'validation[1:5]'`."""
    hf, data, gold, predicted = _sst2_folder(tmp_path)
    common = dict(variants="ort-fp32", shapes="1x8", nb_measures=2, threads=1)
    result = inferforge.convert(hf, "text-classification", tmp_path / "py", eval_data=data,
                                eval_split="validation[1:5]", **common)
    python = json.loads((result.output / "report.json").read_text())
    cli = _cli_report([hf, "--task", "text-classification", "--output", tmp_path / "cli", "--variants", "ort-fp32",
                       "--shapes", "1x8", "--nb-measures", "2", "--threads", "1", "--eval-data", data,
                       "--eval-split", "validation[1:5]"])
    assert python["eval_data"] == cli["eval_data"]
    assert (python["eval_data"]["split"], python["eval_data"]["rows"]) == ("validation", 4)
    assert any("rows [1:5]" in note for note in python["eval_data"]["notes"])
    expected = 100.0 * sum(g == p for g, p in zip(gold[1:5], predicted[1:5])) / 4  # rows 1..4 of the split
    for report in (python, cli):
        by_name = {v["name"]: v for v in report["variants"]}
        assert by_name["pytorch-fp32"]["extra"]["accuracy"]["value"] == pytest.approx(expected, abs=1e-9)
        assert by_name["ort-fp32"]["extra"]["accuracy"]["value"] == pytest.approx(expected, abs=1e-9)
    assert python["accuracy"] == cli["accuracy"] and python["selected"] == cli["selected"] == "ort-fp32"


def test_python_convert_takes_every_cli_convert_option():
    """Each `inferforge convert` flag is a keyword of inferforge.convert of the same name (ConvertOptions)."""
    import dataclasses

    import typer.main

    from inferforge.cli import app
    from inferforge.pipeline import ConvertOptions

    command = typer.main.get_command(app).commands["convert"]
    flags = {param.name for param in command.params} - {"model"}
    fields = {f.name for f in dataclasses.fields(ConvertOptions)}
    assert flags - fields == set()


@pytest.mark.parametrize("kwargs, message", [
    ({"eval_split": "validation"}, "--eval-split 'validation' picks the split of an --eval-data folder; give --eval-data too."),
    ({"eval_split": "test[:x]", "eval_data": "DATA"}, "--eval-split 'test[:x]' is not a split name or a slice"),
    # (dev, valid and validation stand for each other: "dev" would take validation.csv)
    ({"eval_split": "test", "eval_data": "DATA"}, "has no split 'test' (splits: train, validation); name one of them with --eval-split"),
])
def test_python_convert_bad_eval_split_stops_before_the_model(tmp_path, kwargs, message):
    data = tmp_path / "data"
    data.mkdir()  # a Hub-style folder: files named by split
    for split in ("train", "validation"):
        (data / f"{split}.csv").write_text("text,label\nhello,0\n")
    kwargs = {k: (data if v == "DATA" else v) for k, v in kwargs.items()}
    with pytest.raises(inferforge.UserError) as error:
        inferforge.convert(tmp_path / "no-model-needed", "text-classification", tmp_path / "out", **kwargs)
    assert message in str(error.value)
    assert not (tmp_path / "out").exists()


def test_calibration_and_validation_texts_from_a_folder_and_a_csv(tmp_path):
    """--calibration-data takes what --validation-texts takes: a DatasetDict folder (its train split) calibrates
    the static int8 variant, a CSV's text column verifies every variant; report.json says which texts."""
    hf, data, _, _ = _sst2_folder(tmp_path)
    texts = _write_csv(tmp_path / "check.csv", ["sentence", "label"],
                       [["the cast is superb", "1"], ["dull and far too long", "0"], ["a film", "1"]])
    report = _cli_report([hf, "--task", "text-classification", "--output", tmp_path / "out", "--variants",
                          "ort-fp32,ort-int8-static-minmax", "--shapes", "1x8", "--nb-measures", "2", "--threads", "1",
                          "--no-accuracy-search", "--atol", "1", "--min-agreement", "0",
                          "--calibration-data", data, "--validation-texts", texts])
    assert report["calibration"] == {"source": f"{data} (split 'train')", "format": "Arrow", "split": "train", "count": 1}
    assert report["validation"] == {"source": str(texts), "format": "CSV", "split": None, "count": 3}
    by_name = {v["name"]: v for v in report["variants"]}
    assert by_name["ort-int8-static-minmax"]["status"] in ("passed", "selected"), by_name["ort-int8-static-minmax"]


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    import csv

    with path.open("w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return path
