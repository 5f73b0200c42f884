"""Dataset folders: what `datasets`' save_to_disk writes (Dataset, DatasetDict), a Hub repository's files named by
split, the split to read (asked for, else the first default one) and the class names of a dataset card."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from inferforge.arrow_files import _ArrowFiles
from inferforge.brat_files import read_brat
from inferforge.data_cells import _listing
from inferforge.data_files import _file_kind, _read_file
from inferforge.data_records import ARROW_FORMATS, DATA_SUFFIXES, _Records, _compression, _data_suffix
from inferforge.errors import UserError, first_line


# The split used when none is asked for: the first of these a dataset has.
DEFAULT_SPLITS = ("test", "validation", "dev", "valid")
# A split may be sliced as datasets allows: test[:200], validation[10%:20%].
_SLICED = re.compile(r"(?P<name>[^\[\]]+)\[(?P<start>-?\d*%?):(?P<stop>-?\d*%?)\]")


def _card_feature_names(feature: Any) -> list[str] | None:
    """The class names of one feature of a dataset card's YAML (`dataset_info.features`): `dtype: {class_label:
    {names: {'0': neg, '1': pos}}}`, or under `sequence:` / `list:` for tags."""
    if not isinstance(feature, dict):
        return None
    label = feature.get("class_label")
    if isinstance(label, dict):
        names = label.get("names")
        if isinstance(names, dict):
            try:
                by_id = {int(k): str(v) for k, v in names.items()}
            except (TypeError, ValueError):
                return None
            if sorted(by_id) != list(range(len(by_id))):
                return None
            return [by_id[i] for i in range(len(by_id))] or None
        return [str(n) for n in names] if isinstance(names, list) and names else None
    for key in ("dtype", "sequence", "list", "feature"):
        found = _card_feature_names(feature.get(key))
        if found:
            return found
    return None


def _dataset_card(path: Path) -> Path | None:
    """The README.md of the Hub repository a data file or folder was downloaded from: in the folder itself, or up
    to two folders above a file (data/test.csv, sst2/validation-*.parquet)."""
    start = path if path.is_dir() else path.parent
    for folder in [start, *list(start.parents)[:2]]:
        card = folder / "README.md"
        if card.is_file():
            return card
    return None


def card_class_names(path: Path) -> tuple[dict[str, list[str]], Path | None]:
    """Column -> class names from the YAML header of the dataset card (README.md) beside the data, as the Hub
    writes it (`dataset_info: features: - name: label, dtype: class_label: names: {'0': negative, ...}`), and the
    card read. A card of several configurations is read for the one named by a folder above the data, else
    `default`, else the only one."""
    card = _dataset_card(path)
    if card is None:
        return {}, None
    try:
        text = card.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return {}, None
    match = re.match(r"---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(\r?\n|$)", text, re.S)
    if match is None:
        return {}, None
    try:
        import yaml

        header = yaml.safe_load(match.group(1))
    except Exception:  # noqa: BLE001 - a card that is no YAML names no classes
        return {}, None
    infos = header.get("dataset_info") if isinstance(header, dict) else None
    if isinstance(infos, dict):
        infos = [infos]
    if not isinstance(infos, list):
        return {}, None
    infos = [i for i in infos if isinstance(i, dict)]
    try:
        parts = set(path.resolve().relative_to(card.parent.resolve()).parts)
    except ValueError:
        parts = set()
    chosen = (next((i for i in infos if i.get("config_name") in parts), None)
              or next((i for i in infos if i.get("config_name") in (None, "default")), None)
              or (infos[0] if len(infos) == 1 else None))
    features = chosen.get("features") if chosen else None
    if not isinstance(features, list):
        return {}, None
    found = {str(f["name"]): names for f in features if isinstance(f, dict) and "name" in f
             and (names := _card_feature_names(f))}
    return found, card if found else None


_SHARD = re.compile(r"[-_.]?\d{3,}-of-\d{3,}$")


def _split_of_file(folder: Path, path: Path) -> str:
    """A Hub repository's split name of a data file: test-00000-of-00001.parquet, test.jsonl, test/0000.parquet; a BRAT
    document's is its folder's (train/doc1.ann), every document of the folder one split."""
    if DATA_SUFFIXES.get(_data_suffix(path)) == "brat":
        return path.parent.name
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    if _compression(path):  # test.jsonl.gz
        stem = stem[: -len(Path(stem).suffix)]
    stem = _SHARD.sub("", stem)
    if re.fullmatch(r"\d*", stem) or stem in ("data", "part") or stem.startswith("part-"):
        return path.parent.name if path.parent != folder else stem
    return stem


def _find_split_files(folder: Path) -> dict[str, list[Path]]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and (_data_suffix(p) in DATA_SUFFIXES
                                                                    or _file_kind(p) == "conll")  # conll2003's *.txt
                   and not (_compression(p) and DATA_SUFFIXES.get(_data_suffix(p)) in ARROW_FORMATS)
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts)
                   and p.name not in ("dataset_info.json", "dataset_infos.json", "dataset_dict.json", "state.json"))
    splits: dict[str, list[Path]] = {}
    for path in files:
        splits.setdefault(_split_of_file(folder, path), []).append(path)
    for split, paths in splits.items():
        parents = sorted({str(p.parent.relative_to(folder)) for p in paths})
        if len(parents) > 1:
            raise UserError(f"{folder} has '{split}' files in several folders ({', '.join(parents)}); point at the "
                            f"folder of the configuration you want.")
        kinds = {DATA_SUFFIXES.get(_data_suffix(p), "conll") for p in paths}
        if len(kinds) > 1:
            raise UserError(f"{folder} has '{split}' files of several formats ({', '.join(p.name for p in paths[:4])}); "
                            f"point at one file.")
    return splits


def _read_json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserError(f"{path} is not readable JSON ({first_line(error, 120)}); save the dataset again "
                        f"with save_to_disk.") from None


def _saved_dataset(folder: Path) -> _Records:
    """A folder written by Dataset.save_to_disk: state.json lists the .arrow files, dataset_info.json the features."""
    state = _read_json_file(folder / "state.json")
    names = [f.get("filename") for f in state.get("_data_files", []) if isinstance(f, dict)] if isinstance(state, dict) else []
    files = [folder / n for n in names if n] or sorted(folder.glob("*.arrow"))
    if not files:
        raise UserError(f"{folder} has a state.json but no .arrow files; save the dataset again with save_to_disk.")
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise UserError(f"{missing[0]} is missing although {folder / 'state.json'} lists it; copy the whole folder "
                        f"that save_to_disk wrote.")
    info_path = folder / "dataset_info.json"
    info = _read_json_file(info_path) if info_path.is_file() else {}
    features = info.get("features") if isinstance(info, dict) else None
    return _ArrowFiles(files, "arrow", str(folder), features if isinstance(features, dict) else None).records()


def _split_files(files: list[Path], folder: Path) -> _Records:
    """One split of a Hub-style folder: its files read as one table (Parquet, Arrow) or one after another (text
    files, whose rows then say their own file in messages)."""
    fmt = DATA_SUFFIXES.get(_data_suffix(files[0]))
    if fmt in ARROW_FORMATS:
        return _ArrowFiles(files, fmt, str(folder)).records()
    if fmt == "brat":  # documents read together: one note for the split, not one per document
        return read_brat(files, str(files[0].parent))
    merged = _Records([], [], [], "")
    places: list[str] = []
    for path in files:
        part = _read_file(path)
        rows = part.rows_for(part.header)
        merged.rows.extend(rows)
        merged.lines.extend(part.lines)
        merged.header.extend(h for h in part.header if h not in merged.header)
        merged.fmt = part.fmt
        merged.notes += part.notes
        places.extend(part.where(i, str(path)) for i in range(len(rows)))
    merged.places = places
    return merged


@dataclass
class _SplitChoice:
    name: str | None
    load: Any  # () -> _Records
    by_default: bool
    files: tuple[Path, ...] = ()  # the files of a split of a folder of files named by split (test.txt)


def _dataset_splits(folder: Path, split: str | None, defaults: Sequence[str] = DEFAULT_SPLITS,
                    choose: str = "name the one to evaluate on with --eval-split") -> tuple[list[_SplitChoice], list[str]]:
    """The splits to try, in order (the one asked for; else the first of `defaults` the folder has: test, then
    validation for labelled data), and every split found. `choose` says how to pick one when none is a default."""
    if (folder / "dataset_dict.json").is_file():
        info = _read_json_file(folder / "dataset_dict.json")
        names = [str(n) for n in info.get("splits", [])] if isinstance(info, dict) else []
        loaders = {n: (lambda n=n: _saved_dataset(folder / n)) for n in names if (folder / n / "state.json").is_file()}
        if not loaders:
            raise UserError(f"{folder} has a dataset_dict.json but none of its splits ({', '.join(names) or 'none'}) has a "
                            f"folder with a state.json; copy the whole folder that save_to_disk wrote.")
    elif (folder / "state.json").is_file():
        state = _read_json_file(folder / "state.json")
        name = state.get("_split") if isinstance(state, dict) else None
        if split is not None and name is not None and str(name) != split:
            raise UserError(f"{folder} is a saved Dataset of split '{name}' only, not '{split}'; point at the folder "
                            f"of split '{split}' or leave out the split.")
        return [_SplitChoice(str(name) if name is not None else None, lambda: _saved_dataset(folder), False)], \
            [str(name)] if name is not None else []
    else:
        found = _find_split_files(folder)
        if not found:
            raise UserError(f"{folder} holds no labelled data: give a data file, a folder written by datasets' "
                            f"save_to_disk, or a folder of files named by split (e.g. test-00000-of-00001.parquet).")
        loaders = {n: (lambda files=files: _split_files(files, folder)) for n, files in found.items()}
        if len(loaders) == 1 and split is None:
            (name, load), = loaders.items()
            return [_SplitChoice(name, load, False, tuple(found[name]))], [name]
    names = list(loaders)
    files = {n: tuple(found[n]) for n in names} if not (folder / "dataset_dict.json").is_file() else {}
    if split is not None:
        if split not in loaders:
            # validation, valid and dev name one split (conll2003's valid.txt, GLUE's dev.tsv)
            alias = [n for n in _SAME_SPLIT.get(split, ()) if n in loaders]
            if len(alias) != 1:
                raise UserError(f"{folder} has no split '{split}' (splits: {', '.join(names)}); name one of them with "
                                f"--eval-split.")
            split = alias[0]
        return [_SplitChoice(split, loaders[split], False, files.get(split, ()))], names
    order = [n for n in defaults if n in loaders]
    if not order:
        raise UserError(f"{folder} has no {', '.join(repr(n) for n in defaults[:-1])} or '{defaults[-1]}' "
                        f"split (splits: {', '.join(names)}); {choose}.")
    return [_SplitChoice(n, loaders[n], True, files.get(n, ())) for n in order], names


_SAME_SPLIT = {"validation": ("valid", "dev"), "valid": ("validation", "dev"), "dev": ("validation", "valid")}


def _split_file_names(folder: Path, files: Sequence[Path]) -> str:
    """' (file test.txt)': the file(s) a split of a folder of files named by split was read from, for its note."""
    if not files:
        return ""
    names = [str(f.relative_to(folder)) for f in files]
    return f", read from {names[0]}" if len(names) == 1 else f", read from {len(names)} files ({_listing(names, 3)})"


def _split_slice(split: str | None) -> tuple[str | None, tuple[str, str] | None]:
    """`test[:200]` -> ("test", (":", "200")): the split and the rows asked for, as datasets spells them."""
    if split is None:
        return None, None
    split = split.strip()
    match = _SLICED.fullmatch(split)
    if match is None:
        if "[" in split or "]" in split:
            raise UserError(f"--eval-split '{split}' is not a split name or a slice such as test[:200] or "
                            f"validation[:10%]; write it that way.")
        return split, None
    return match["name"].strip(), (match["start"], match["stop"])
