"""Text to token arrays with the Hugging Face `tokenizers` package alone.

The same `tokenizer.json` is used by verification, `LoadedModel.predict` and the Triton tokenizer
model, so the server and the local engine see identical tokens.
"""

from __future__ import annotations

import json
import threading
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from inferforge.errors import UserError
from inferforge.token_windows import CLS_MARK, Windows, encode_windows, special_marks  # noqa: F401

PAD_TOKENS = ("[PAD]", "<pad>", "<|padding|>", "<|pad|>", "[pad]")
CLS_TOKENS = ("[CLS]", "<s>", "<cls>", "[cls]")


@dataclass
class Encoded:
    """A tokenized batch: the model's input arrays plus what post-processing needs."""

    arrays: dict[str, np.ndarray]
    texts: list[str]
    pairs: list[str] | None
    offsets: list[list[tuple[int, int]]] = field(default_factory=list)
    sequence_ids: list[list[int | None]] = field(default_factory=list)
    word_ids: list[list[int | None]] = field(default_factory=list)
    special_mask: list[list[int]] = field(default_factory=list)  # 1 special token, CLS_MARK the classifier token
    # Row -> index of its text, when a text was read as several windows (question answering); None: one row per text.
    sample: list[int] | None = None

    def rows_of(self, index: int) -> list[int]:
        """The rows (windows) that hold text `index`."""
        if self.sample is None:
            return [index]
        return [row for row, owner in enumerate(self.sample) if owner == index]

    def token_mask(self, length: int | None = None) -> np.ndarray:
        """(batch, length) booleans: True on the real tokens of each row, False on padding."""
        if "attention_mask" in self.arrays:
            mask = self.arrays["attention_mask"].astype(bool)
        else:
            width = max((len(o) for o in self.offsets), default=0)
            if self.arrays:
                width = max(width, next(iter(self.arrays.values())).shape[1])
            mask = np.zeros((len(self.offsets), width), dtype=bool)
            for row, offsets in enumerate(self.offsets):
                mask[row, : len(offsets)] = True
        return mask if length is None else mask[:, :length]


class TextEncoder:
    """Tokenizes texts (and text pairs) to int64 arrays named after the model's inputs."""

    def __init__(self, tokenizer: Tokenizer, input_names: tuple[str, ...], max_length: int, pad_id: int | None = None,
                 cls_id: int | None = None, windows: Windows | None = None, prefix: str = ""):
        self.input_names = tuple(input_names)
        self.max_length = int(max_length)
        self.tokenizer = tokenizer
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=self.max_length, strategy="longest_first")
        if pad_id is None:  # the Hugging Face tokenizer's pad token is the caller's to give; else guess by name
            pad_id = next((i for i in map(tokenizer.token_to_id, PAD_TOKENS) if i is not None), 0)
        self.pad_id = int(pad_id)
        if cls_id is None:
            cls_id = next((i for i in map(tokenizer.token_to_id, CLS_TOKENS) if i is not None), -1)
        self.cls_id = int(cls_id)  # -1: the tokenizer has no classifier token
        self.windows = windows  # text pairs only: a long second text is read as overlapping windows
        # Put before every (first) text: a sentence-transformers model's default prompt. Sentence embeddings
        # only, which read no character offsets (they would count the prefix).
        self.prefix = prefix
        # Reading windows changes the tokenizer's truncation for the call: one call at a time, so that threads
        # sharing a loaded model (a web app's workers) never see each other's settings.
        self._lock = threading.Lock()

    @classmethod
    def from_dir(cls, directory: Path | str, input_names=None, max_length=None,
                 windows: Windows | None = None) -> "TextEncoder":
        """Load `tokenizer.json` and `encoder.json` (input names, max length, pad and CLS ids) written by `save`.
        `windows`: how the task reads a long second text (the task's, so that older folders get it too)."""
        directory = Path(directory)
        meta_path = directory / "encoder.json"
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        names = tuple(input_names or meta.get("input_names") or ("input_ids", "attention_mask"))
        length = int(max_length or meta.get("max_length") or 512)
        return cls(Tokenizer.from_file(str(directory / "tokenizer.json")), names, length, meta.get("pad_id"),
                   meta.get("cls_id"), windows, meta.get("prefix") or "")

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save(str(directory / "tokenizer.json"))
        meta = {"input_names": list(self.input_names), "max_length": self.max_length, "pad_id": self.pad_id,
                "cls_id": self.cls_id, "windows": self.windows.to_dict() if self.windows else None,
                "prefix": self.prefix}
        (directory / "encoder.json").write_text(json.dumps(meta, indent=2))

    def id_frame(self, vocab_size: int | None = None, pairs: bool | None = None):
        """The special tokens this tokenizer puts before and after a text, for the benchmark's random ids
        (`vocab_size`: the model's embedding rows, default the tokenizer's vocabulary). `pairs` (default: when the
        task reads a second text in windows, question answering): those around and between the two texts of a pair,
        and the second text's segment id, as a question and its context come (Longformer finds the question by its
        separators and fails on a row without them)."""
        from inferforge.benchmark import IdFrame

        pairs = self.windows is not None if pairs is None else pairs
        with self._lock:
            encoding = (self.tokenizer.encode(self.prefix + "a", "b", add_special_tokens=True) if pairs else
                        self.tokenizer.encode(self.prefix + "a", add_special_tokens=True))
        content = [i for i, special in enumerate(encoding.special_tokens_mask) if not special]
        first, last = (content[0], content[-1]) if content else (len(encoding.ids), len(encoding.ids) - 1)
        special = {i for i, token in self.tokenizer.get_added_tokens_decoder().items() if token.special}
        special.update(i for i, mark in zip(encoding.ids, encoding.special_tokens_mask) if mark)
        middle, second_type = (), 0
        second = [i for i in content if encoding.sequence_ids[i] == 1]
        if pairs and second:
            end_first = max((i for i in content if encoding.sequence_ids[i] == 0), default=first - 1)
            middle, second_type = tuple(encoding.ids[end_first + 1:second[0]]), int(encoding.type_ids[second[0]])
        return IdFrame(int(vocab_size or self.tokenizer.get_vocab_size()), tuple(encoding.ids[:first]),
                       tuple(encoding.ids[last + 1:]), frozenset(special), middle, second_type)

    def encode(self, texts: list[str], pairs: list[str] | None = None, pad_to: int | None = None) -> Encoded:
        if isinstance(texts, str):
            raise TypeError("encode() takes a list of texts, not a single string")
        if pairs is not None and len(pairs) != len(texts):
            raise UserError(f"Got {len(texts)} texts but {len(pairs)} text pairs; give one pair per text.")
        if not texts:
            raise UserError("No text to encode: give at least one text.")
        firsts = [self.prefix + text for text in texts] if self.prefix else texts
        items = list(zip(firsts, pairs)) if pairs is not None else list(firsts)
        sample = None
        with self._lock:
            if pairs is not None and self.windows is not None:
                encodings, sample = encode_windows(self.tokenizer, items, self.max_length, self.windows)
                if len(encodings) == len(items):
                    sample = None  # every context fit in one window
            else:
                encodings = self.tokenizer.encode_batch(items, add_special_tokens=True)
        length = max(len(e.ids) for e in encodings)
        if pad_to is not None:
            length = max(length, pad_to)
        batch = len(encodings)
        ids = np.full((batch, length), self.pad_id, dtype=np.int64)
        mask = np.zeros((batch, length), dtype=np.int64)
        types = np.zeros((batch, length), dtype=np.int64)
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            ids[row, :n] = enc.ids
            mask[row, :n] = 1
            types[row, :n] = enc.type_ids
        all_arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        arrays = {name: all_arrays[name] for name in self.input_names}
        return Encoded(
            arrays=arrays,
            texts=list(texts),
            pairs=list(pairs) if pairs is not None else None,
            offsets=[list(e.offsets) for e in encodings],
            sequence_ids=[list(e.sequence_ids) for e in encodings],
            word_ids=[list(e.word_ids) for e in encodings],
            special_mask=[special_marks(e, self.cls_id) for e in encodings],
            sample=sample,
        )


class CutTextWarning(UserWarning):
    """`LoadedModel.predict` read only the start of some texts (token classification) or questions (question
    answering): `cut`, their indices among `total`; `inferforge predict` prints it as a note, numbered as its lines."""

    def __init__(self, cut: list[int], total: int, max_length: int, questions: bool):
        self.cut, self.total, self.max_length, self.questions = cut, total, max_length, questions
        super().__init__(cut_note(cut, total, max_length, questions))

    def renumbered(self, numbers: list[int]) -> "CutTextWarning":
        """The same warning with text i numbered numbers[i] (the lines of a file with blank lines among them)."""
        return CutTextWarning([numbers[i] for i in self.cut], self.total, self.max_length, self.questions)


def cut_texts(encoded: Encoded, max_length: int, prefix: str = "") -> list[int]:
    """The indices of the texts whose first text (the text; the question of a pair) the model does not read to its
    end: a row of `max_length` tokens whose last token of that text ends before the text's last character that is not
    white space. A single text is cut at `max_length` tokens (token classification reads no windows, so its words past
    the cut get no tag); a question is cut when it leaves its context no room (longest first, see `encode_windows`)."""
    cut: set[int] = set()
    for row, offsets in enumerate(encoded.offsets):
        if len(offsets) < max_length:
            continue
        index = encoded.sample[row] if encoded.sample is not None else row
        text = prefix + encoded.texts[index]
        ends = [end for (start, end), sequence, special in zip(offsets, encoded.sequence_ids[row], encoded.special_mask[row])
                if sequence == 0 and not special and end > start]
        if ends and any(not ch.isspace() and unicodedata.category(ch)[0] != "C" for ch in text[max(ends):]):
            cut.add(index)  # (control and format characters, a zero-width space, are no tokens to read)
    return sorted(cut)


def cut_note(cut: list[int], total: int, max_length: int, question: bool) -> str:
    """What `inferforge predict` says of the texts `cut_texts` found (numbered from 1, as the answers' lines)."""
    shown = ", ".join(str(i + 1) for i in cut[:10]) + (", ..." if len(cut) > 10 else "")
    are = "is" if len(cut) == 1 else "are"
    if question:
        return (f"{len(cut)} of the {total} questions (question {shown}) {are} longer than the model's {max_length} "
                f"tokens leave room for: each was cut, and its context with it, so its answer comes from part of the "
                f"question only; shorten the question.")
    return (f"{len(cut)} of the {total} texts (text {shown}) {are} longer than the model's {max_length} tokens: only "
            f"the start of each is read, so no entity is found past the cut; split long texts into sentences.")


def fast_from_python_tokenizer(tokenizer):
    """A fast (tokenizer.json) twin of a tokenizer transformers has in Python only, or None.

    ESM's tokenizer cuts the text at every vocabulary entry (amino-acid letters and its special tokens), splits
    what is left on white space and looks each piece up: a WordLevel model behind a Split on the vocabulary does
    the same. The twin is used only when it gives the Python tokenizer's ids on every built-in text and pair
    (checked by the caller with `same_tokens`)."""
    import re

    import transformers
    from tokenizers import Regex, models, pre_tokenizers, processors

    byte_twin = _byte_twin(tokenizer)
    if byte_twin is not None:
        return byte_twin
    if type(tokenizer).__name__ != "EsmTokenizer" or not getattr(tokenizer, "all_tokens", None):
        return None
    vocab = {token: i for i, token in enumerate(tokenizer.all_tokens)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token=tokenizer.unk_token))
    pieces = "|".join(re.escape(t) for t in sorted(vocab, key=len, reverse=True))
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(pieces), "isolated"),
                                                     pre_tokenizers.WhitespaceSplit()])
    cls, eos = tokenizer.cls_token, tokenizer.eos_token
    backend.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {eos}", pair=f"{cls} $A {eos} $B:1 {eos}:1",
        special_tokens=[(cls, vocab[cls]), (eos, vocab[eos])])
    specials = {name: getattr(tokenizer, name) for name in ("unk_token", "cls_token", "pad_token", "mask_token",
                                                            "eos_token") if getattr(tokenizer, name, None)}
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, model_max_length=tokenizer.model_max_length,
        model_input_names=list(tokenizer.model_input_names), padding_side=tokenizer.padding_side, **specials)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable character for each byte: the alphabet of tokenizers' ByteLevel pre-tokenizer."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[byte] = chr(byte)
        else:
            chars[byte] = chr(256 + extra)
            extra += 1
    return chars


def _byte_twin(tokenizer):
    """A fast twin of a tokenizer whose ids are the text's UTF-8 bytes plus an offset (ByT5's, Perceiver's), or None.

    Its vocabulary says so: one id per byte, each character below 256 at its byte's id, all in a row. The twin reads
    the text as bytes (tokenizers' ByteLevel, words split at white space only) and looks each byte up; it matches the
    tokenizer's added tokens in the text first, as the Python tokenizer does, and puts the special tokens where the
    Python tokenizer puts them around "a" and the pair "a", "b"."""
    import transformers
    from tokenizers import AddedToken, Regex, decoders, models, pre_tokenizers, processors

    convert = getattr(tokenizer, "_convert_token_to_id", None)
    if convert is None or len(tokenizer) > 1024:
        return None
    try:
        offset = convert(chr(0))
        if not isinstance(offset, int) or any(convert(chr(byte)) != offset + byte for byte in range(256)):
            return None
        single, pair = tokenizer("a")["input_ids"], tokenizer("a", "b")["input_ids"]
    except Exception:  # noqa: BLE001 - not a byte tokenizer
        return None
    a, b = offset + ord("a"), offset + ord("b")
    added = {i: str(token) for i, token in tokenizer.added_tokens_decoder.items()}
    marks = {i: added.get(i) for i in single + pair if i not in (a, b)}
    if single.count(a) != 1 or pair.count(a) != 1 or pair.count(b) != 1 or None in marks.values():
        return None
    byte_chars = _bytes_to_unicode()
    vocab = {byte_chars[byte]: offset + byte for byte in range(256)}
    if set(vocab.values()) & set(added) or len(set(added.values())) != len(added):
        return None
    vocab.update({name: i for i, name in added.items()})
    backend = Tokenizer(models.BPE(vocab, [], unk_token=getattr(tokenizer, "unk_token", None)))
    # Words and the white space between them as their own pieces (one word id each: an entity's bytes are grouped
    # by word), then every byte of a piece as its own token.
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(r"\s+"), "isolated"),
                                                     pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    backend.decoder = decoders.ByteLevel()
    backend.add_tokens([AddedToken(str(token), single_word=token.single_word, lstrip=token.lstrip, rstrip=token.rstrip,
                                   normalized=False, special=token.special)
                        for _, token in sorted(tokenizer.added_tokens_decoder.items())])

    def template(ids):  # "[CLS] $A [SEP]": where the special tokens go
        return " ".join("$A" if i == a else "$B:1" if i == b else marks[i] for i in ids)

    backend.post_processor = processors.TemplateProcessing(single=template(single), pair=template(pair),
                                                           special_tokens=[(name, i) for i, name in marks.items()])
    specials = {name: str(getattr(tokenizer, name)) for name in ("unk_token", "cls_token", "sep_token", "pad_token",
                                                                 "mask_token", "bos_token", "eos_token")
                if getattr(tokenizer, name, None)}
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, model_max_length=tokenizer.model_max_length,
        model_input_names=list(tokenizer.model_input_names), padding_side=tokenizer.padding_side, **specials)


def same_tokens(python_tokenizer, fast_tokenizer, texts: list[str], pairs: list[str] | None) -> bool:
    """Whether two tokenizers give the same ids for every text (and text pair), as written and upper-cased."""
    for case in (lambda t: t, str.upper):
        rows = [case(t) for t in texts]
        second = [case(p) for p in pairs] if pairs else None
        for i, text in enumerate(rows):
            args = (text, second[i]) if second else (text,)
            if python_tokenizer(*args)["input_ids"] != fast_tokenizer(*args)["input_ids"]:
                return False
    return True
