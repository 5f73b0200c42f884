"""JSON data: JSON Lines, an array of objects, columns and pandas' layouts, SQuAD's nested file and MRQA's lines."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from inferforge.data_records import _Records
from inferforge.errors import UserError


def _read_json_object(whole: dict, path: Path) -> _Records | None:
    """One JSON object holding the whole data set: SQuAD, records under "data" (or under the one key whose value is a
    list of objects: {"examples": [...]}, {"version": 2, "sentences": [...]}), or columns. None: one row."""
    data = whole.get("data")
    lists = [k for k, v in whole.items() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
    if data is None and len(lists) == 1 and not any(isinstance(v, list) for k, v in whole.items() if k != lists[0]):
        data = whole[lists[0]]
    if isinstance(data, list) and data and all(isinstance(x, dict) for x in data):
        squad_keys = {"title", "paragraphs"}
        # SQuAD by its articles (paragraphs, qas), not by a "version" key: {"version": 1, "data": [{"text", "label"}]}
        # is records under "data" (what datasets' load_dataset("json", field="data") reads)
        if "data" in whole and any("paragraphs" in x or "qas" in x or set(x) <= squad_keys for x in data):
            return _read_squad(whole, path)
        seen: dict[str, None] = {}
        for x in data:
            seen.update(dict.fromkeys(x))
        return _Records(data, list(range(len(data))), list(seen), "JSON records", unit="row index")
    if isinstance(data, list) and isinstance(whole.get("columns"), list) and all(isinstance(x, list) for x in data):
        columns = [str(c) for c in whole["columns"]]  # pandas to_json(orient="split")
        for i, x in enumerate(data):
            if len(x) != len(columns):
                raise UserError(f"Row index {i} of {path} has {len(x)} values for {len(columns)} columns; "
                                f"give one value per column.")
        return _Records([dict(zip(columns, x)) for x in data], list(range(len(data))), columns, "JSON columns",
                        unit="row index")
    if whole and all(isinstance(v, list) for v in whole.values()):  # {"text": [...], "label": [...]}
        lengths = {k: len(v) for k, v in whole.items()}
        if len(set(lengths.values())) > 1:
            raise UserError(f"The columns of {path} have different lengths "
                            f"({', '.join(f'{k}: {n}' for k, n in lengths.items())}); give every column one value per row.")
        n = next(iter(lengths.values()))
        rows = [{k: v[i] for k, v in whole.items()} for i in range(n)]
        return _Records(rows, list(range(n)), list(whole), "JSON columns", unit="row index")
    if whole and all(isinstance(v, dict) for v in whole.values()):
        # pandas to_json(): {column: {index: value}} by default, {index: {column: value}} with orient="index"
        outer = list(whole)
        by_index = all(re.fullmatch(r"-?\d+", k) for k in outer) and not all(
            re.fullmatch(r"-?\d+", str(k)) for v in whole.values() for k in v)
        if by_index:
            rows = [whole[k] for k in outer]
            seen = {}
            for r in rows:
                seen.update(dict.fromkeys(r))
            return _Records(rows, [int(k) for k in outer], list(seen), "JSON columns", unit="row index")
        index = list(dict.fromkeys(k for v in whole.values() for k in v))
        rows = [{c: whole[c].get(i) for c in outer} for i in index]
        lines = [int(i) if re.fullmatch(r"-?\d+", i) else n for n, i in enumerate(index)]
        return _Records(rows, lines, outer, "JSON columns", unit="row index")
    return None


def _json_object(value: Any, number: int, path: Path, seen: dict[str, None]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UserError(f"Line {number} of {path} is not a JSON object; write one object per line (or row).")
    seen.update(dict.fromkeys(value))
    return value


def _read_json_lines(content: str, path: Path, fmt: str) -> _Records:
    seen: dict[str, None] = {}
    records, lines = [], []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"Line {number} of {path} is not valid JSON ({exc.msg}).") from None
        records.append(_json_object(record, number, path, seen))
        lines.append(number)
    return _Records(records, lines, list(seen), "JSON Lines")


def _read_json_array(content: str, path: Path) -> _Records:
    """A JSON array of objects, read element by element so that messages can give each one's line."""
    decoder = json.JSONDecoder()
    seen: dict[str, None] = {}
    records, lines = [], []
    position = content.index("[") + 1
    while True:
        while position < len(content) and content[position] in " \t\r\n":
            position += 1
        if position < len(content) and content[position] == "]":
            break
        number = content.count("\n", 0, position) + 1
        try:
            record, position = decoder.raw_decode(content, position)
        except json.JSONDecodeError as exc:
            raise UserError(f"Line {exc.lineno} of {path} is not valid JSON ({exc.msg}).") from None
        records.append(_json_object(record, number, path, seen))
        lines.append(number)
        while position < len(content) and content[position] in " \t\r\n":
            position += 1
        if position < len(content) and content[position] == ",":
            position += 1
        elif position >= len(content) or content[position] != "]":
            line = content.count("\n", 0, position) + 1
            raise UserError(f"Line {line} of {path} is not valid JSON (expected ',' or ']' after an object).")
    if content[position + 1:].strip():
        raise UserError(f"{path} has text after its JSON array; give one array of objects.")
    return _Records(records, lines, list(seen), "JSON array")


def _read_squad(whole: dict, path: Path) -> _Records:
    """SQuAD v1.1/v2.0: data -> [{title, paragraphs -> [{context, qas -> [{id, question, answers}]}]}]."""
    records, places = [], []
    for a, article in enumerate(whole["data"]):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise UserError(f"Article {a + 1} of {path} has no 'paragraphs' list; is this a SQuAD file?")
        for p, paragraph in enumerate(paragraphs):
            if not isinstance(paragraph, dict) or not isinstance(paragraph.get("qas"), list):
                raise UserError(f"Paragraph {p + 1} of article {a + 1} of {path} has no 'qas' list.")
            for q, qa in enumerate(paragraph["qas"]):
                if not isinstance(qa, dict):
                    raise UserError(f"Question {q + 1} of paragraph {p + 1} of article {a + 1} of {path} is not an object.")
                answers = qa.get("answers") or []
                if not isinstance(answers, list) or not all(isinstance(x, dict) for x in answers):
                    raise UserError(f"Question {qa.get('id', q + 1)} of {path} has 'answers' that are not a list of objects.")
                # No "answers" at all is no gold (a test file), not SQuAD 2.0's unanswerable question ("answers": [],
                # "is_impossible": true): left empty, so that scoring it is refused (texts alone are still read).
                given = "answers" in qa or bool(qa.get("is_impossible"))
                records.append({"id": qa.get("id"), "title": article.get("title"), "context": paragraph.get("context"),
                                "question": qa.get("question"),
                                "answers": {"text": [x.get("text") for x in answers],
                                            "answer_start": [x.get("answer_start") for x in answers]} if given else None})
                places.append(f"question '{qa.get('id', q + 1)}' (article {a + 1}, paragraph {p + 1}) of {path}")
    header = ["id", "title", "context", "question", "answers"] if records else []
    return _Records(records, list(range(1, len(records) + 1)), header, "SQuAD JSON", places)


def _read_mrqa(records: _Records, path: Path) -> _Records:
    """MRQA's JSON Lines (`{"header": ...}` first, then a context per line with its questions: `qas` of `question` and
    `answers`, a list of texts), one row per question as SQuAD's are read."""
    rows, places = [], []
    for record, line in zip(records.rows, records.lines):
        if set(record) == {"header"}:
            continue
        if not isinstance(record.get("qas"), list) or not all(isinstance(qa, dict) for qa in record["qas"]):
            raise UserError(f"Line {line} of {path} has no 'qas' list of questions; is this an MRQA file?")
        for q, qa in enumerate(record["qas"]):
            rows.append({"id": qa.get("qid", qa.get("id")), "context": record.get("context"),
                         "question": qa.get("question"), "answers": qa.get("answers")})
            places.append(f"question {q + 1} ('{qa.get('qid', '')}') of line {line} of {path}")
    header = ["id", "context", "question", "answers"] if rows else []
    return _Records(rows, list(range(1, len(rows) + 1)), header, "MRQA JSON Lines", places)
