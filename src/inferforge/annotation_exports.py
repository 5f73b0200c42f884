"""What annotation tools export, as teams bring their own labelled data.

Label Studio's JSON export: a list of tasks, each with its fields under `data` ({"text": ...}, or several fields for
pairs) and its annotations' `result`s:

* `choices` (text classification): the chosen class, or the list of classes of a multi-choice (multi-label) task;
* `labels` (entities): character spans {"start", "end", "labels": [...]}, read as any entity spans are (B-/I- tags of
  the words they cover).

Each task becomes a row holding its `data` fields and a `label`; the first annotation not cancelled is the gold (the
note says when tasks have several); tasks nobody annotated have no gold and are left out, said.

Prodigy's JSON Lines (`_task_hash`, `answer`): only accepted examples are gold. A rejected one says which class a text
is not (binary `label`) or that its suggestion was wrong, an ignored one nothing: both are left out, said. The choice
interface's `accept` list holds the chosen classes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inferforge.errors import UserError
from inferforge.data_records import _Records


def is_label_studio(records: _Records) -> bool:
    return ("annotations" in records.header and "data" in records.header and records.rows is not None
            and all(isinstance(r.get("data"), dict) for r in records.rows))


def _gold(results: list, where: str, entities: bool, controls: int) -> Any:
    """The label of one annotation's results: a class, a list of classes, or entity spans [[start, end, label]]
    (`entities`: the file labels entities, so no result is a text without any); None: no gold. With several choice
    controls (sentiment and topic), {control's from_name: its class(es)}."""
    by_control: dict[str, list] = {}
    for r in results:
        if r.get("type") == "choices":
            by_control.setdefault(str(r.get("from_name") or "label"), []).extend((r.get("value") or {}).get("choices") or [])
    if controls > 1 and by_control:
        return {name: chosen[0] if len(chosen) == 1 else chosen for name, chosen in by_control.items()}
    choices = [c for chosen in by_control.values() for c in chosen]
    spans = []
    for r in results:
        value = r.get("value") or {}
        if r.get("type") == "labels":
            names = value.get("labels") or []
            if len(names) != 1:
                raise UserError(f"An entity at {where} has {len(names)} labels ({', '.join(map(str, names))}); give "
                                f"each entity one label.")
            spans.append([value.get("start"), value.get("end"), names[0]])
    if choices and spans:
        raise UserError(f"The annotation at {where} holds both choices and entity labels; export one task kind "
                        f"(text classification or entities) per file.")
    if spans or (entities and not choices):
        return spans
    if not results:
        return None
    if not choices:
        kinds = sorted({str(r.get("type")) for r in results}) or ["none"]
        raise UserError(f"The annotation at {where} has no choices or entity labels (result types: {', '.join(kinds)}); "
                        f"label the task with choices (classes) or labels (entities).")
    return choices[0] if len(choices) == 1 else choices


def _tasks_have(n: int) -> str:
    return "1 task has" if n == 1 else f"{n:,} tasks have"


def read_label_studio(records: _Records, path: Path) -> _Records:
    rows, lines, places = [], [], []
    unannotated, several = [], 0
    results = [r for record in records.rows for a in record.get("annotations") or [] if isinstance(a, dict)
               for r in (a.get("result") if isinstance(a.get("result"), list) else []) if isinstance(r, dict)]
    entities = any(r.get("type") == "labels" for r in results)
    controls = sorted({str(r["from_name"]) for r in results if r.get("type") == "choices" and r.get("from_name")})
    for record, line in zip(records.rows, records.lines):
        where = f"task {record.get('id', '?')} (line {line}) of {path}"
        annotations = [a for a in record.get("annotations") or []
                       if isinstance(a, dict) and not a.get("was_cancelled")]
        if not annotations:
            unannotated.append(where)
            continue
        results = annotations[0].get("result") or []
        if not isinstance(results, list) or not all(isinstance(r, dict) and isinstance(r.get("value") or {}, dict)
                                                    for r in results):
            raise UserError(f"The annotation at {where} has a 'result' that is not a list of objects with a 'value' "
                            f"object; export the project again as Label Studio JSON.")
        label = _gold(results, where, entities, len(controls))
        if label is None:
            unannotated.append(where)
            continue
        several += len(annotations) > 1
        rows.append({**record["data"], **(label if isinstance(label, dict) else {"label": label})})
        lines.append(line)
        places.append(where)
    if not rows:
        raise UserError(f"No task of {path} has an annotation (Label Studio export); annotate the tasks, or export "
                        f"with annotations.")
    header = list(dict.fromkeys(k for r in rows for k in r))
    notes = [f"{path} is a Label Studio export: each task's fields and the label of its first annotation are read"
             + (f", each choice control as a column ({', '.join(controls)}; name the one to score with --label-column)"
                if len(controls) > 1 else "")]
    if several:
        notes.append(f"{_tasks_have(several)} several annotations; the first of each is taken as the gold")
    if unannotated:
        notes.append(f"{_tasks_have(len(unannotated))} no annotation or an empty one (the first: {unannotated[0]}); "
                     f"such tasks are left out")
    return _Records(rows, lines, header, "Label Studio JSON", places, notes=records.notes + ("; ".join(notes),))


def is_prodigy(records: _Records) -> bool:
    return "answer" in records.header and ("_task_hash" in records.header or "_input_hash" in records.header)


def read_prodigy(records: _Records, path: Path) -> _Records:
    rows, lines, gone = [], [], {}
    choice = "accept" in records.header
    for record, line in zip(records.rows, records.lines):
        answer = record.get("answer")
        if answer != "accept":
            gone.setdefault(str(answer), []).append(line)
            continue
        row = {k: v for k, v in record.items() if k != "answer"}
        if choice:
            chosen = record.get("accept") or []
            row["label"] = chosen[0] if isinstance(chosen, list) and len(chosen) == 1 else chosen
        rows.append(row)
        lines.append(line)
    if not rows:
        raise UserError(f"No example of {path} is accepted (Prodigy answers: {', '.join(sorted(gone))}); evaluate on "
                        f"accepted annotations.")
    header = [c for c in records.header if c != "answer"] + (["label"] if choice and "label" not in records.header
                                                             else [])
    note = f"{path} is a Prodigy export: the accepted examples are read"
    if choice:
        note += " (each one's 'accept' list holds its classes)"
    if gone:
        left = ", ".join(f"{len(v):,} {k}" for k, v in gone.items())
        first = min(n for v in gone.values() for n in v)
        note += (f"; examples not accepted ({left}; the first at line {first}) say at most which class a text is not, "
                 f"so they are left out")
    return _Records(rows, lines, header, records.fmt, notes=records.notes + (note,))
