"""Gold labels turned into what a task scores, once the model's labels are known: class ids (through the dataset's
class names), sets of classes, tags, answers, scores (`LabelResolver` and the readers per task)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from inferforge.data_cells import _as_class_id, _as_flag, _listing, _name_key, parse_cell, _shown
from inferforge.errors import UserError

if TYPE_CHECKING:
    from inferforge.labelled_data import LabelledData


def _names_column(labels: list[Any], names: list[Any]) -> list[str] | None:
    """The class names of integer label ids from a column beside them that names each row's class (SetFit's
    label_text: label 0, label_text "sadness"), indexed by id ("" for an id no row has); None when the labels are
    not ids, or an id has two names."""
    found: dict[int, str] = {}
    for label, name in zip(labels, names):
        as_id = _as_class_id(label)
        if as_id is None or as_id < 0 or not isinstance(name, str) or not name.strip():
            if as_id == -1:
                continue  # a row without gold label (SNLI's -1): no name to learn
            return None
        if found.setdefault(as_id, name.strip()) != name.strip():
            return None
    if not found or max(found) > 10_000:
        return None
    return [found.get(i, "") for i in range(max(found) + 1)]


@dataclass(frozen=True)
class NameMatch:
    """How one label name matched the model's (`_LabelIndex.match`): `id` the model's id (None: no match, or
    `candidates` when the name fits several), `how` exact, case, punctuation or prefix."""

    id: int | None
    how: str = ""
    candidates: tuple[int, ...] = ()


class _LabelIndex:
    """A model's label names, and the one way a name is matched to them (`match`), for the data's string
    labels and tags and for a dataset's class names alike."""

    def __init__(self, label_names: Sequence[str]):
        self.names = [str(n) for n in label_names]
        self.exact = {name: i for i, name in enumerate(self.names)}
        self.folded: dict[str, int] = {}
        for i, name in enumerate(self.names):
            self.folded.setdefault(name.strip().casefold(), i)
        self.keys = [_name_key(n) for n in self.names]

    def match(self, name: Any, taken: Iterable[int] = ()) -> NameMatch:
        """Exactly, then ignoring case, then ignoring punctuation (not_entailment = NOT ENTAILMENT), then as a
        prefix (neg = NEGATIVE) of one label not in `taken`. A name that fits several labels at the first step
        that fits any is ambiguous: no id, and the labels it fits as `candidates`."""
        key = str(name).strip()
        if key in self.exact:
            return NameMatch(self.exact[key], "exact")
        if key.casefold() in self.folded:
            return NameMatch(self.folded[key.casefold()], "case")
        bare = _name_key(key)
        if not bare:
            return NameMatch(None)
        taken = set(taken)
        for how, fits in (("punctuation", lambda k: k == bare), ("prefix", lambda k: k.startswith(bare))):
            found = tuple(j for j, k in enumerate(self.keys) if fits(k) and j not in taken)
            if len(found) == 1:
                return NameMatch(found[0], how)
            if found:
                return NameMatch(None, how, found)
        return NameMatch(None)

    def hint(self, value: Any) -> str:
        generic = all(re.fullmatch(r"LABEL_\d+", str(n)) for n in self.names)
        if _as_class_id(value) == -1:
            return " (-1 marks an unlabelled row, as in a GLUE test split; use a split with labels)"
        if str(value).strip() == "-":
            return " ('-' marks a row without a gold label, as in SNLI's files; use rows with labels)"
        if generic and isinstance(value, str) and _as_class_id(value) is None:
            return " (the model's config.json names its classes generically, so give the class ids)"
        if _as_class_id(value) == len(self.names):
            return (f"; if the data numbers its classes from 1 (as Yelp's and Amazon's polarity CSVs do), shift them "
                    f"to 0-{len(self.names) - 1} or write the label names")
        return ""


_GENERIC_LABEL = re.compile(r"(LABEL_)?\d+", re.IGNORECASE)


class LabelResolver:
    """The model's class id of each label of one data set, and how it was found (`mapping()`).

    A label is the model's label name or an integer id. When the data set names its ids (a `datasets`
    ClassLabel: `data.class_names`), an id goes through its name to the model's id, so a dataset and a model
    that order their classes differently (MNLI) still agree. Names, the data's own (CSV, JSON, tags...) and the
    dataset's class names alike, match one way (`_LabelIndex.match`): exactly, then ignoring case, then ignoring
    punctuation (not_entailment = NOT ENTAILMENT), then as a unique prefix (neg = NEGATIVE); a name that fits
    two labels is an error naming both. Without names, or when the model's own names are generic (LABEL_0...),
    an id is the model's id.
    """

    def __init__(self, data: LabelledData, label_names: Sequence[str]):
        self.data = data
        self.model = [str(n) for n in label_names]
        self.index = _LabelIndex(label_names)
        names = list(data.class_names) if data.class_names else None
        if names and all(n == str(i) for i, n in enumerate(names)):
            names = None  # ClassLabel(num_classes=n) names its ids "0", "1"...: no names
        self.dataset_names = names
        self.generic_model = bool(self.model) and all(_GENERIC_LABEL.fullmatch(n) for n in self.model)
        self.through_names = names is not None and not self.generic_model
        self.class_matches = self._match_names(names) if self.through_names else {}
        self.to_model = {i: m.id for i, m in self.class_matches.items()}
        self.names_seen: dict[str, NameMatch] = {}  # each label name of the data and how it matched
        self.by_name = 0
        self.ids_seen: set[int] = set()
        self.as_written: dict[str, None] = {}  # tags of another scheme kept for entity types the model knows
        self.missing_types: dict[str, str] = {}  # gold entity types the model does not tag (casefolded -> as written)
        self.missing_tags: dict[str, None] = {}  # the tags of those types, kept as written
        self.numbers_seen: dict[str, int | None] = {}  # "1" -> the model's id when it is one of its names
        self._numbers_named: bool | None = None  # `_numbers_are_names`, once known
        self.flags_seen: set[bool] = set()  # true/false labels taken as the ids 1/0 of a two-class model
        self.indicators = False  # labels are 0/1 vectors, one value per class of the model (`class_sets`)

    def _number_name(self, spelling: str) -> int | None:
        """The model's id of the label named by the number `spelling` ("1", "-1"), exactly or but for case; None."""
        if spelling not in self.numbers_seen:  # once per spelling: a file has millions of "0" and "1"
            found = self.index.match(spelling)
            self.numbers_seen[spelling] = found.id if found.how in ("exact", "case") else None
        return self.numbers_seen[spelling]

    def _numbers_are_names(self) -> bool:
        """Whether the data's numbers are the model's label names: only when every number of the column is one (a
        model named "1".."5" given 1..5); a column holding one number that is no name (0..4) numbers its classes by
        id throughout, never "0" as an id and "1" as a name in one column."""
        if self._numbers_named is None:
            spellings: dict[str, None] = {}
            for label in self.data.labels:
                parsed = parse_cell(label)
                if isinstance(parsed, list) and len(parsed) == 1:
                    parsed = parsed[0]
                if isinstance(parsed, (bool, np.bool_, list, dict)) or _as_class_id(parsed) is None:
                    continue
                spellings.setdefault(parsed if isinstance(parsed, str) else str(_as_class_id(parsed)))
                if len(spellings) > 10_000:
                    break
            self._numbers_named = all(self._number_name(s) is not None for s in spellings)
        return self._numbers_named

    def _match_names(self, names: list[str]) -> dict[int, NameMatch]:
        """The model's label of each of the dataset's class names; a prefix is only taken by one name (the
        names that match more closely go first)."""
        found = {i: self.index.match(name) for i, name in enumerate(names)}
        taken = {m.id for m in found.values() if m.id is not None and m.how != "prefix"}
        for i, name in enumerate(names):
            if found[i].id is None or found[i].how == "prefix":
                found[i] = self.index.match(name, taken)
                if found[i].id is not None:
                    taken.add(found[i].id)
        return found

    def _name(self, value: str, row: int, noun: str) -> int | None:
        """The model's id of a label written as a name (`_LabelIndex.match`, cached per name); None: not a name
        of the model's. A name that fits several of the model's labels is an error naming them."""
        key = value.strip()
        if key not in self.names_seen:
            self.names_seen[key] = self.index.match(key)
        found = self.names_seen[key]
        if found.candidates:
            raise UserError(f"{noun.capitalize()} '{key}' at {self.data.where(row)} is ambiguous: "
                            f"{self._fits(found)}; write more of the name.")
        return found.id

    def _fits(self, found: NameMatch) -> str:
        """Which of the model's labels an ambiguous name fits: "it is the start of NEGATIVE and NEUTRAL"."""
        labels = _listing([self.model[j] for j in found.candidates[:-1]]) + f" and {self.model[found.candidates[-1]]}"
        return (f"it is the start of {labels}" if found.how == "prefix"
                else f"it is {labels} when punctuation is ignored")

    def __call__(self, value: Any, row: int, noun: str = "label") -> int:
        flag = _as_flag(value)
        if flag is not None:  # JSON true/false, "True"/"false" in a CSV (google/boolq's answer)
            hit = self._name(str(flag), row, noun)  # a model whose labels are True/False (or a unique prefix)
            if hit is not None:
                self.by_name += 1
                return hit
            if len(self.model) == 2:  # as datasets numbers ClassLabel(names=["False", "True"])
                self.flags_seen.add(flag)
                return int(flag)
            raise UserError(f"{noun.capitalize()} '{value}' at {self.data.where(row)} is true/false, but the model has "
                            f"{len(self.model)} labels ({_listing(self.model)}), none named so; write the model's "
                            f"label names.")
        as_id = _as_class_id(value)
        # A number written as a JSON/Parquet int (1, -1, 1.0) is the same label as the CSV cell "1" when the data names
        # no classes of its own (a ClassLabel's ids go through the dataset's names below).
        if isinstance(value, str) or (as_id is not None and self.dataset_names is None):
            if as_id is None:
                hit = self._name(value, row, noun)
            else:  # "1" is a name only when the model has it; otherwise an id, never the start of "1 star"
                spelling = value if isinstance(value, str) else str(as_id)
                hit = self._number_name(spelling) if self._numbers_are_names() else None
            if hit is not None:
                self.by_name += 1
                return hit
        if as_id is not None and self.through_names:
            names, column = self.dataset_names, self.data.columns.label
            if as_id == -1:
                raise UserError(f"{noun.capitalize()} id -1 at {self.data.where(row)} marks an unlabelled row (as in "
                                f"GLUE's test splits); evaluate on a split with labels (e.g. --eval-split validation).")
            if not 0 <= as_id < len(names):
                raise UserError(f"{noun.capitalize()} id {as_id} at {self.data.where(row)} is outside the {len(names)} "
                                f"classes the dataset's features name for column '{column}' ({_listing(names)}); "
                                f"fix the row or the dataset's ClassLabel.")
            hit = self.to_model[as_id]
            if hit is None and self.class_matches[as_id].candidates:
                raise UserError(f"Class '{names[as_id]}' (id {as_id} of column '{column}') at {self.data.where(row)} "
                                f"is ambiguous: {self._fits(self.class_matches[as_id])}; rename the dataset's classes "
                                f"to the model's names (datasets: ds.cast_column('{column}', ClassLabel(names=[...]))).")
            if hit is None:
                raise UserError(f"Class '{names[as_id]}' (id {as_id} of column '{column}') at {self.data.where(row)} is "
                                f"not one of the model's labels ({_listing(self.model)}); write the labels as the "
                                f"model's names, or rename the dataset's classes to them (datasets: "
                                f"ds.cast_column('{column}', ClassLabel(names=[...]))).")
            self.ids_seen.add(as_id)
            return hit
        if as_id is not None and 0 <= as_id < len(self.model):
            self.ids_seen.add(as_id)
            return as_id
        raise UserError(f"Unknown {noun} '{value}' at {self.data.where(row)}; the model's labels are: "
                        f"{', '.join(self.model)} (or their ids 0-{len(self.model) - 1}){self.index.hint(value)}.")

    def mapping(self) -> dict:
        """How the labels were read, for report.json and one line of output: `how` (names, class-names, ids),
        `pairs` (every class the dataset names, else each id seen: the dataset's name, the model's id and label)
        and `note` (None: nothing to say)."""
        seen = sorted(self.ids_seen)
        names = self.dataset_names
        how = [h for h, used in (("names", self.by_name), ("class-names", seen and self.through_names),
                                  ("ids", seen and not self.through_names), ("booleans", self.flags_seen),
                                  ("indicators", self.indicators)) if used]
        pairs = []
        for i in (range(len(names)) if seen and self.through_names else seen):  # every class the dataset names
            m = self.to_model[i] if self.through_names else i
            pairs.append({"dataset_id": i, "dataset_name": names[i] if names and i < len(names) else None,
                          "model_id": m, "model_label": self.model[m] if m is not None else None})
        note = None
        if seen and self.through_names:
            same = all(p["dataset_id"] == p["model_id"] for p in pairs)
            listed = _listing([f"{p['dataset_id']} {p['dataset_name']} -> " + (
                f"{p['model_id']} {p['model_label']}" if p["model_id"] is not None
                else "as written" if p["dataset_name"] in self.as_written or p["dataset_name"] in self.missing_tags
                else "none (unused)") for p in pairs if p["dataset_name"]])  # "": an id no row has
            note = (f"label ids mapped through the dataset's class names to the model's labels: {listed}"
                    + (" (same ids)" if same else ""))
        elif seen and names:
            listed = _listing([f"{i} {names[i] if i < len(names) else '?'} = {self.model[i]}" for i in seen])
            note = (f"the model names its classes generically ({_listing(self.model, 4)}), so the dataset's label ids "
                    f"are taken as the model's ids: {listed}")
        elif seen:
            listed = _listing([f"{i} = {self.model[i]}" for i in seen])
            check = ("the model names its classes generically, so make sure the data numbers them as the model was "
                     "trained to" if self.generic_model else
                     "if the data numbers its classes differently, write the class names")
            note = (f"labels are integer ids and {self.data.name} gives no class names, so they are taken as the "
                    f"model's ids ({listed}); {check}")
        if self.flags_seen:
            said = (f"labels true/false are taken as the model's ids 1 = {self.model[1]} and 0 = {self.model[0]} (as "
                    f"datasets numbers the classes False, True); if the model means otherwise, write its label names")
            note = f"{note}; {said}" if note else said
        if self.indicators:
            said = (f"labels are 0/1 vectors, one value per class in the model's order "
                    f"({_listing([f'{i} = {n}' for i, n in enumerate(self.model)], 6)})")
            note = f"{note}; {said}" if note else said
        loose = [f"{name} = {self.model[m.id]}" for name, m in self.names_seen.items()
                 if m.id is not None and m.how in ("punctuation", "prefix")]
        if loose:  # neg = NEGATIVE is said, as the dataset's class names are
            said = f"label names matched to the model's ignoring punctuation or as a prefix: {_listing(loose)}"
            note = f"{note}; {said}" if note else said
        if self.as_written:
            said = (f"tags the model does not have, for entity types it has, are compared as written (entities, not "
                    f"tags, are scored): {_listing(list(self.as_written))}")
            note = f"{note}; {said}" if note else said
        missing = list(self.missing_types.values())
        if missing:
            said = (f"gold entity types the model does not tag: {_listing(missing)} (the model can never predict "
                    f"them, so their entities count as missed and lower the recall)")
            note = f"{note}; {said}" if note else said
        return {"how": how, "dataset_class_names": names, "pairs": pairs, "note": note,
                "entity_types_missing_from_model": missing}


# Labels that say a row has no gold label: datasets' -1 for a missing ClassLabel value (SNLI's pairs without a
# majority label, GLUE's test splits), and "-", the gold_label of those pairs in SNLI's and MNLI's own files.
NO_GOLD_LABELS = ("-1", "-")


def _no_gold(value: Any, model: set[str]) -> bool:
    if isinstance(value, bool):
        return False
    text = str(value).strip()
    return (text == "-" or _as_class_id(value) == -1) and not ({text, str(_as_class_id(value))} & model)


def without_unlabelled_rows(data: LabelledData, label_names: Sequence[str]) -> tuple[LabelledData, str | None]:
    """`data` without its rows whose label is a mark of no gold label (`NO_GOLD_LABELS`, unless the model has a label
    so named), and a note saying how many were left out (None: none): SNLI's validation and test splits hold such rows
    among labelled ones, which its evaluation leaves out too. Data whose every label is such a mark is returned whole,
    for the label check to refuse with its reason."""
    model = {str(n).strip() for n in label_names}
    gone = [row for row, label in enumerate(data.labels) if _no_gold(label, model)]
    if not gone or len(gone) == len(data):
        return data, None
    left = sorted(set(range(len(data))) - set(gone))
    shown = ", ".join(dict.fromkeys(repr(str(data.labels[row]).strip()) for row in gone))
    note = (f"rows without a gold label ({shown}, as SNLI marks pairs without a majority label) are left out: "
            f"{len(gone):,} of the {len(data):,} rows of {data.name} (the first at {data.where(gone[0])}); "
            f"{len(left):,} are scored")
    return data.subset(left), note


def class_ids(data: LabelledData, label_names: Sequence[str], resolver: LabelResolver | None = None) -> np.ndarray:
    """Class id of each row's label: the model's label name (in any case, or a unique prefix...), or an integer
    id (through the dataset's class names when it has them); see `LabelResolver`. One-hot vectors ([0, 1, 0]) are the
    class of their 1, in the model's order."""
    resolver = resolver or LabelResolver(data, label_names)
    one_hot = _one_hot(data)
    if one_hot is not None:
        width = len(parse_cell(data.labels[0]))
        if width != len(label_names):
            raise UserError(f"Label {_shown(data.labels[0])} at {data.where(0)} is a one-hot vector of {width} values, "
                            f"one per class, but the model has {len(label_names)} classes "
                            f"({_listing(resolver.model, 6)}); give one value per class of the model, or the class "
                            f"name or id of each row.")
        resolver.indicators = True
        return np.asarray(one_hot, dtype=np.int64)
    ids = np.empty(len(data), dtype=np.int64)
    for row, label in enumerate(data.labels):
        parsed = parse_cell(label)  # a list of one class ([3]) is that class
        ids[row] = resolver(parsed[0] if isinstance(parsed, list) and len(parsed) == 1 else label, row)
    return ids


def is_multi_label(data: LabelledData, model_says: bool = False) -> bool:
    """Labels given as lists of classes (go_emotions' `labels`, a Sequence of ClassLabel; `[0, 2]` in a CSV cell):
    each row has a set of classes, none to all. Lists of exactly one class everywhere are single labels written as
    lists, and so are one-hot vectors (a single 1 per row: `[0, 1, 0]`, Keras' categorical labels), unless the model
    is multi-label (`model_says`: config.problem_type multi_label_classification)."""
    lists = [parsed for parsed in map(parse_cell, data.labels) if isinstance(parsed, list)]
    if model_says and not lists:  # a multi-label model's classes written into a cell: "joy,anger" (or ; or |)
        return any(isinstance(label, str) and _LABEL_SEPARATOR.search(label.strip()) for label in data.labels)
    if not model_says and _one_hot(data) is not None:
        return False
    return bool(lists) and (model_says or any(len(parsed) != 1 for parsed in lists))


_LABEL_SEPARATOR = re.compile(r"\s*[,;|]\s*")


def _label_values(label: Any, row: int, resolver: "LabelResolver") -> list:
    """The classes of one multi-label row: a list's items, or a cell's names separated by commas, semicolons or '|'
    ("joy,anger") unless the whole cell is one of the model's classes."""
    parsed = parse_cell(label)
    if isinstance(parsed, list):
        return parsed
    if isinstance(label, str) and _LABEL_SEPARATOR.search(label.strip()):
        try:
            resolver(label, row)
        except UserError:
            return [part for part in _LABEL_SEPARATOR.split(label.strip()) if part]
    return [label]


def _indicator_vectors(data: LabelledData) -> list[list] | None:
    """The labels as 0/1 vectors with a value per class (multi-hot, as multi-label data prepared for training often
    holds them: [0, 1, 1, 0], [0.0, 1.0, ...]; one-hot), or None when they are lists of class names or ids. A list of
    ids names each class once, so 0/1 lists are vectors as soon as one of them repeats a value (every one of three
    classes or more does), or when they all hold the same values in different orders ([1, 0] and [0, 1]: as ids, every
    row would have both classes)."""
    lists = [parse_cell(label) for label in data.labels]
    if not all(isinstance(x, list) and x for x in lists):
        return None
    binary = all(isinstance(v, (bool, np.bool_)) or (isinstance(v, (int, float, np.integer, np.floating))
                                                      and v in (0, 1)) for x in lists for v in x)
    if not binary:
        return None
    repeats = any(len(set(map(float, x))) < len(x) for x in lists)
    shuffled = (len({tuple(map(float, x)) for x in lists}) > 1
                and len({tuple(sorted(map(float, x))) for x in lists}) == 1)
    return lists if repeats or shuffled else None


def _one_hot(data: LabelledData) -> list[int] | None:
    """The class of each row when the labels are one-hot vectors (a single 1 per row, all of one length), else None."""
    vectors = _indicator_vectors(data)
    if vectors is None or len({len(v) for v in vectors}) != 1:
        return None
    ones = [[i for i, v in enumerate(vector) if float(v) == 1.0] for vector in vectors]
    return [found[0] for found in ones] if all(len(found) == 1 for found in ones) else None


def class_sets(data: LabelledData, label_names: Sequence[str], resolver: LabelResolver | None = None) -> np.ndarray:
    """(rows, classes) booleans: the classes of each row, a list of names or ids (a single one is a set of one; an
    empty list, no class), each resolved as `class_ids` resolves a label."""
    resolver = resolver or LabelResolver(data, label_names)
    gold = np.zeros((len(data), len(label_names)), dtype=bool)
    vectors = _indicator_vectors(data)
    if vectors is not None:  # multi-hot: [0, 1, 1, 0] is classes 1 and 2, not the ids 0 and 1
        for row, vector in enumerate(vectors):
            if len(vector) != len(label_names):
                raise UserError(f"Label {_shown(data.labels[row])} at {data.where(row)} is a vector of {len(vector)} "
                                f"0/1 values, one per class, but the model has {len(label_names)} classes "
                                f"({_listing(resolver.model, 6)}); give one value per class of the model, or the "
                                f"list of class names or ids of each row.")
            gold[row] = np.asarray(vector, dtype=np.float64) > 0.5
        resolver.indicators = True
        return gold
    for row, label in enumerate(data.labels):
        for value in _label_values(label, row, resolver):
            if isinstance(value, (list, dict)) or value is None:
                raise UserError(f"Label list {label} at {data.where(row)} holds {value!r}; give each row a list of "
                                f"class names or ids, e.g. [0, 2] or [\"joy\"].")
            gold[row, resolver(value, row)] = True
    return gold


def tag_sequences(data: LabelledData, label_names: Sequence[str], resolver: LabelResolver | None = None) -> list[list[str]]:
    """One tag per whitespace-separated word of each text: a list (of names or ids), or tags separated by
    spaces. Names match the model's as labels do (`LabelResolver`); ids go through the dataset's tag names (a Sequence of
    ClassLabel, as conll2003's ner_tags) when it has them, else they are the model's ids (config.json id2label).

    Entities are compared, not tags: a tag in another scheme than the model's (WikiANN's B-PER for a model tagging
    I-PER only, IO tags such as PER) is kept as written when the model knows its entity type. A tag of an entity type
    the model does not know (B-MISC for a PER/LOC/ORG model) is kept too, as seqeval would score it: the model never
    predicts it, so its entities are missed (`resolver.missing_types` says which types); data none of whose entity
    types the model knows is labelled for another model, and refused."""
    from inferforge.metrics import split_tag

    resolver = resolver or LabelResolver(data, label_names)
    types = {kind.casefold(): kind for _, kind in map(split_tag, resolver.model) if kind}
    first_missing: list[tuple[str, int]] = []  # the first tag of a type the model does not know, and its row

    def tag_name(tag: Any, row: int) -> str:
        try:
            return resolver.model[resolver(tag, row, "tag")]
        except UserError:
            as_id, names = _as_class_id(tag), resolver.dataset_names
            named = as_id is None or bool(names and 0 <= as_id < len(names))  # an id without a name has no type
            name = names[as_id] if as_id is not None and named else str(tag).strip()
            prefix, kind = split_tag(name)
            if not named or not kind:
                raise
            if kind.casefold() in types:
                resolver.as_written[name] = None
                return f"{prefix}-{types[kind.casefold()]}"
            kind = resolver.missing_types.setdefault(kind.casefold(), kind)
            resolver.missing_tags[name] = None
            if not first_missing:
                first_missing.append((name, row))
            return f"{prefix}-{kind}"

    sequences: list[list[str]] = []
    for row, (text, label) in enumerate(zip(data.texts, data.labels)):
        parsed = parse_cell(label)
        tags = parsed if isinstance(parsed, list) else str(label).split()
        words = text.split()
        if len(tags) != len(words):
            raise UserError(
                f"{data.where(row)} has {len(words)} words but {len(tags)} tags; give one tag per "
                f"whitespace-separated word."
            )
        sequences.append([tag_name(tag, row) for tag in tags])
    if first_missing and not any(kind.casefold() in types for tags in sequences for _, kind in map(split_tag, tags)):
        tag, row = first_missing[0]
        raise UserError(f"None of the entity types of {data.name} ({_listing(list(resolver.missing_types.values()))}) "
                        f"is one the model tags ({_listing(list(dict.fromkeys(types.values())))}), e.g. tag '{tag}' at "
                        f"{data.where(row)}; evaluate on data labelled with the model's entity types.")
    return sequences


def answer_texts(data: LabelledData) -> list[list[str]]:
    """Gold answers of each question: a string, a list of strings, or SQuAD's {"text": [...], ...}.

    SQuAD v2.0's unanswerable questions (an answer list that is empty, or holds blank texts only) have the empty
    answer as their gold.
    """
    answers: list[list[str]] = []
    for row, label in enumerate(data.labels):
        label = parse_cell(label)
        if isinstance(label, str) and label.strip().startswith("{") and label.strip().endswith("}"):
            raise UserError(f"The answers at {data.where(row)} are not readable ({label.strip()[:60]}); write them as "
                            f"JSON, e.g. {{\"text\": [\"...\"]}}, or export the data as JSON Lines.")
        if isinstance(label, dict):
            if "text" not in label:
                raise UserError(f"The answers at {data.where(row)} have no 'text'; give {{\"text\": [...]}} as SQuAD does.")
            value = label["text"]
        elif isinstance(label, list) and label and all(isinstance(x, dict) for x in label):
            if not all("text" in x for x in label):
                raise UserError(f"The answers at {data.where(row)} have no 'text'; give {{\"text\": [...]}} as SQuAD does.")
            value = [x["text"] for x in label]
        else:
            value = label
        if isinstance(value, list) and all(isinstance(o, str) and not o.strip() for o in value):  # [] or [""]: unanswerable
            answers.append([""])
            continue
        options = value if isinstance(value, list) else [value]
        options = [str(o) for o in options if o is not None and str(o).strip()]
        if not options:
            raise UserError(f"No answer text at {data.where(row)}; give a string, a list of strings or {{\"text\": [...]}}.")
        answers.append(options)
    return answers


def similarity_scores(data: LabelledData, noun: str = "Similarity score", why: str = "") -> np.ndarray:
    """Gold similarity score of each text pair (or gold value of a one-output model), as a number. `why` ends
    the message about a value that is not one (what the rows should hold instead)."""
    names = [n for n in data.class_names or () if n]
    if names and not all(_as_class_id(n) is not None for n in names):  # ClassLabel(names=["0", "1"...]) are numbers
        raise UserError(f"Column '{data.columns.label}' of {data.name} holds classes ({_listing(names, 6)}, named by the "
                        f"dataset), not {noun.lower()}s{why}; give a column of numbers, e.g. STS-B's or SICK's "
                        f"relatedness score, with --label-column.")
    scores = np.empty(len(data), dtype=np.float64)
    for row, label in enumerate(data.labels):
        if data.decimal_comma and isinstance(label, str) and re.fullmatch(r"\s*[+-]?\d+,\d+\s*", label):
            label = label.replace(",", ".")  # 4,5 in a semicolon CSV (Excel where the comma is the decimal mark)
        try:
            scores[row] = float(label)
        except (TypeError, ValueError):
            raise UserError(f"{noun} '{label}' at {data.where(row)} is not a number{why}.") from None
        if not np.isfinite(scores[row]):
            raise UserError(f"{noun} '{label}' at {data.where(row)} is not a finite number{why}.")
    return scores
