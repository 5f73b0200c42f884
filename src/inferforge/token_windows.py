"""Long second texts read as overlapping windows, and the classifier token's mark (the `tokenizers` package only).

Question answering reads a context longer than the model's window as the transformers question-answering
pipeline does: several windows, each with the whole question, consecutive windows sharing `stride` context
tokens; the answer is the best span over all windows. Used by `inferforge.tokenization.TextEncoder` (local
answers, verification, the models that tokenize themselves) and copied by `inferforge.triton.repository`
beside the Triton tokenizer model (no inferforge import here), so that it runs in a stock Triton container: one way to cut, wherever
the text is tokenized.
"""

from dataclasses import dataclass

CLS_MARK = 2  # special_mask value of the classifier token (where a QA model points for "no answer")


@dataclass(frozen=True)
class Windows:
    """Windows of at most `length` tokens (first text and special tokens included), consecutive windows sharing
    `stride` tokens of the second text: the transformers question-answering pipeline's defaults."""

    length: int = 384
    stride: int = 128

    def to_dict(self) -> dict:
        return {"length": self.length, "stride": self.stride}


def special_marks(encoding, cls_id: int) -> list:
    """The encoding's special-tokens mask (1 on special tokens), CLS_MARK on the classifier token. Every request
    goes through here: the classifier token is found by list.index (C speed), not a Python loop over tokens."""
    marks = list(encoding.special_tokens_mask)
    if cls_id < 0:
        return marks
    ids = encoding.ids
    at = -1
    while True:
        try:
            at = ids.index(cls_id, at + 1)
        except ValueError:
            return marks
        if marks[at]:
            marks[at] = CLS_MARK


def encode_windows(tokenizer, items: list, max_length: int, windows: Windows) -> tuple:
    """(first, second) text pairs as windows: returns every window's encoding, in order, and per window the
    index of its pair. A pair whose first text leaves no room for the second is truncated as usual (longest
    first, one window). The tokenizer is left truncating to `max_length`, longest first.

    The stride is the transformers question-answering pipeline's `doc_stride`: min(window // 2, windows.stride).
    The `tokenizers` package aborts (a Rust panic, not an exception) when the stride is not below the room the
    first text leaves (the pipeline failed there), so such a pair's stride is half that room instead."""
    length = min(max_length, windows.length)
    specials = tokenizer.post_processor.num_special_tokens_to_add(True) if tokenizer.post_processor else 0
    tokenizer.no_truncation()
    try:
        rooms = [length - specials - len(f.ids)
                 for f in tokenizer.encode_batch([first for first, _ in items], add_special_tokens=False)]
        stride = min(windows.stride, length // 2)
        strides = [(stride if stride < room else room // 2) if room >= 1 else -1 for room in rooms]  # -1: no windows
        encoded = [None] * len(items)
        for stride in sorted(set(strides)):
            chosen = [i for i, s in enumerate(strides) if s == stride]
            if stride < 0:
                tokenizer.enable_truncation(max_length=max_length, strategy="longest_first")
            else:
                tokenizer.enable_truncation(max_length=length, stride=stride, strategy="only_second")
            done = tokenizer.encode_batch([items[i] for i in chosen], add_special_tokens=True)
            for i, encoding in zip(chosen, done):
                encoded[i] = [encoding] if stride < 0 else [encoding, *encoding.overflowing]
    finally:
        tokenizer.enable_truncation(max_length=max_length, strategy="longest_first")
    result, owners = [], []
    for index, pieces in enumerate(encoded):
        result.extend(pieces)
        owners.extend([index] * len(pieces))
    return result, owners
