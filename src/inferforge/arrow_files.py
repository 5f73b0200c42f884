"""Parquet and Arrow files (pyarrow), one split's files read as one table, with the `datasets` features their
schema carries."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from inferforge.data_records import ARROW_FORMATS, _Records
from inferforge.errors import UserError


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise UserError("Reading Parquet or Arrow data needs pyarrow, which is missing from this environment; "
                        "install it with `pip install pyarrow`.") from None
    return pyarrow


def class_label_names(features: Any) -> dict[str, list[str]]:
    """Column -> class names, for the columns that `datasets` features declare as ClassLabel or as a sequence
    of ClassLabel (token tags), in any of the layouts datasets has written: {"_type": "ClassLabel", "names": [..]},
    {"_type": "Sequence" | "List" | "LargeList", "feature": ...} and the YAML shorthand [feature]."""

    def names(feature: Any) -> list[str] | None:
        if isinstance(feature, list) and len(feature) == 1:
            return names(feature[0])
        if not isinstance(feature, dict):
            return None
        kind = feature.get("_type")
        if kind == "ClassLabel":
            found = feature.get("names")
            return [str(n) for n in found] if isinstance(found, list) and found else None
        if kind in ("Sequence", "List", "LargeList"):
            return names(feature.get("feature"))
        return None

    if not isinstance(features, dict):
        return {}
    return {str(column): found for column, feature in features.items() if (found := names(feature)) is not None}


def _features_from_metadata(metadata: dict | None) -> dict | None:
    """The `datasets` features a Parquet/Arrow schema carries: metadata[b"huggingface"] = {"info": {"features": ...}}."""
    raw = (metadata or {}).get(b"huggingface")
    if not raw:
        return None
    try:
        info = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    features = info.get("info", {}).get("features") if isinstance(info, dict) else None
    return features if isinstance(features, dict) else None


def _unreadable(path: Path, fmt: str, error: Exception) -> UserError:
    try:
        with path.open("rb") as f:
            head = f.read(64)
    except OSError:
        head = b""
    if head.startswith(b"version https://git-lfs"):
        return UserError(f"{path} is a Git LFS pointer, not the data; fetch the file itself (git lfs pull, or "
                         f"huggingface-cli download) and point at it again.")
    text = " ".join(str(error).split())
    if "magic bytes" in text:
        detail = "no Parquet footer where the file ends: it is cut short, or not Parquet"
    else:  # pyarrow's first sentence only, so that the message stays one sentence
        detail = re.split(r"(?<=[a-z0-9)'])\. ", text)[0].rstrip(".")[:160] or type(error).__name__
    writer = "ds.to_parquet(...)" if fmt == "parquet" else "ds.save_to_disk(...)"
    return UserError(f"{path} is not a readable {ARROW_FORMATS[fmt]} file ({detail}); write it again ({writer}) "
                     f"or check that the download finished.")


class _ArrowFiles:
    """The Parquet or Arrow files of one split, read as one table: column names and features from the first
    file's schema, rows read only for the columns used."""

    def __init__(self, files: list[Path], fmt: str, source: str, features: dict | None = None):
        pa = _pyarrow()
        self.files, self.fmt, self.source = files, fmt, source
        self.counts: list[int] = []
        schema = None
        for path in files:
            try:
                if fmt == "parquet":
                    meta = pa.parquet.ParquetFile(path)
                    file_schema, count = meta.schema_arrow, meta.metadata.num_rows
                else:
                    table = self._read_arrow(path)
                    file_schema, count = table.schema, table.num_rows
            except (pa.ArrowException, OSError, ValueError) as error:
                raise _unreadable(path, fmt, error) from None
            schema = schema or file_schema
            self.counts.append(count)
        self.schema = schema
        self.count = sum(self.counts)
        self.features = _features_from_metadata(schema.metadata) or features

    @staticmethod
    def _read_arrow(path: Path):
        """datasets writes the Arrow IPC stream format; Feather / IPC files are read too."""
        import pyarrow as pa
        import pyarrow.feather

        try:  # memory-mapped: a multi-GB cache file is not copied into memory (its buffers keep the map alive)
            return pa.ipc.open_stream(pa.memory_map(str(path))).read_all()
        except pa.ArrowInvalid:
            return pyarrow.feather.read_table(str(path), memory_map=True)

    def rows(self, columns: list[str]) -> list[dict[str, Any]]:
        pa = _pyarrow()
        rows: list[dict[str, Any]] = []
        for path in self.files:
            try:
                if self.fmt == "parquet":
                    table = pa.parquet.read_table(path, columns=columns)
                else:
                    table = self._read_arrow(path).select(columns)
                rows.extend(table.to_pylist())
            except KeyError as error:
                raise UserError(f"{path} has no column {error} although the first file of {self.source} has it; "
                                f"give files with the same columns.") from None
            except (pa.ArrowException, OSError, ValueError) as error:
                raise _unreadable(path, self.fmt, error) from None
        return rows

    def records(self) -> _Records:
        fmt = ARROW_FORMATS[self.fmt]
        return _Records(None, list(range(self.count)), list(self.schema.names), fmt, unit="row index",
                        class_names=class_label_names(self.features), table=self)
