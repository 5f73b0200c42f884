"""Question answering on contexts longer than the model reads at once: overlapping windows, as the transformers
question-answering pipeline read them (transformers 5 removed that pipeline; its algorithm is written out here,
on the Hugging Face tokenizer and the PyTorch model, as the reference).

The tiny models read 64 tokens, so a few built-in contexts joined are a context of many windows.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers

import inferforge
from inferforge.tasks import get_task, trim_span
from inferforge.verify import builtin_texts
from tiny_models import build_tiny_model

QA = get_task("question-answering")
QUESTIONS, CONTEXTS = builtin_texts(QA)
LONG_CONTEXT = " ".join(CONTEXTS)


@pytest.fixture(scope="module")
def qa_models(tmp_path_factory):
    cache = {}

    def get(arch: str):
        if arch not in cache:
            root = tmp_path_factory.mktemp(f"qa-{arch}")
            hf = build_tiny_model(root / "hf", arch, QA.name)
            inferforge.convert(str(hf), QA.name, root / "out", variants="ort-fp32", shapes="1x8", nb_measures=2,
                               warmup=1, threads=1)
            cache[arch] = hf, inferforge.load(root / "out")
        return cache[arch]

    return get


def pipeline_answer(hf_dir, question: str, context: str, max_length: int) -> tuple[int, int, float, list[list[int]]]:
    """(start, end) of the answer the transformers 4 question-answering pipeline gave at its defaults, its null score
    (the lowest p(start) * p(end) on the CLS token over the windows), and its windows' ids.

    Windows of max_seq_len = min(max_length, 384) tokens, the question in each, doc_stride = min(max_seq_len // 2,
    128) context tokens shared; per window p(start) and p(end) are softmaxes over the context tokens and the CLS
    token, the span score their product (start <= end, at most max_answer_len = 15 tokens), the window's best span
    widened to its words (align_to_words: `token_to_word`, `word_to_chars`); the scores of one answer text found in
    several windows (ignoring case) add up, and the highest wins."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(hf_dir)
    model = transformers.AutoModelForQuestionAnswering.from_pretrained(hf_dir).eval()
    length = min(max_length, 384)
    stride = min(length // 2, 128)
    batch = tokenizer(question, context, truncation="only_second", max_length=length, stride=stride,
                      return_overflowing_tokens=True, return_offsets_mapping=True, padding=True, return_tensors="pt")
    offsets = batch.pop("offset_mapping")
    batch.pop("overflow_to_sample_mapping")
    with torch.no_grad():
        out = model(**batch)
    answers: dict[str, list] = {}
    null = 1.0
    for w in range(batch["input_ids"].shape[0]):
        sequence_ids = batch.sequence_ids(w)
        context_tokens = np.array([s == 1 for s in sequence_ids])
        is_cls = batch["input_ids"][w].numpy() == tokenizer.cls_token_id
        counted = context_tokens | is_cls
        probs = []
        for logits in (out.start_logits[w].numpy(), out.end_logits[w].numpy()):
            p = np.exp(np.where(counted, logits, -np.inf) - logits[counted].max())
            probs.append(p / p.sum())
        null = min(null, float(probs[0][is_cls][0] * probs[1][is_cls][0]))
        probs = [np.where(context_tokens, p, 0.0) for p in probs]
        scores = np.triu(np.tril(np.outer(*probs), 15 - 1))
        s, e = (int(i) for i in np.unravel_index(int(scores.argmax()), scores.shape))
        encoding = batch.encodings[w]
        try:
            start = encoding.word_to_chars(encoding.token_to_word(s), sequence_index=1)[0]
            end = encoding.word_to_chars(encoding.token_to_word(e), sequence_index=1)[1]
        except Exception:  # noqa: BLE001 (the pipeline's own fallback: the tokens' offsets)
            start, end = int(offsets[w][s][0]), int(offsets[w][e][1])
        start, end = trim_span(context, start, end)
        key = context[start:end].lower()
        if key in answers:
            answers[key][0] += float(scores[s, e])
        else:
            answers[key] = [float(scores[s, e]), start, end]
    _, start, end = max(answers.values(), key=lambda answer: answer[0])
    windows = [[t for t, m in zip(ids, mask) if m] for ids, mask in zip(batch["input_ids"].tolist(),
                                                                        batch["attention_mask"].tolist())]
    return start, end, null, windows


@pytest.mark.parametrize("arch", ["bert", "roberta", "deberta-v2"])
def test_long_context_answers_as_the_transformers_pipeline(qa_models, arch):
    """WordPiece with [CLS], RoBERTa's <s> ... </s></s> pairs, SentencePiece-style offsets."""
    hf, model = qa_models(arch)
    questions = QUESTIONS[:3]
    contexts = [LONG_CONTEXT, CONTEXTS[0], LONG_CONTEXT[::-1]]  # a short context between two long ones
    encoded = model.encoder.encode(questions, contexts)
    windows = [encoded.rows_of(i) for i in range(len(questions))]
    assert len(windows[1]) < len(windows[0]) and len(windows[0]) > 5 and len(windows[2]) > 5
    answers = model.predict(questions, contexts)
    for index, (question, context, answer) in enumerate(zip(questions, contexts, answers)):
        start, end, null, hf_windows = pipeline_answer(hf, question, context, model.encoder.max_length)
        mask = encoded.token_mask()
        ours = [encoded.arrays["input_ids"][r][mask[r]].tolist() for r in windows[index]]
        assert ours == hf_windows, "the windows are not the Hugging Face tokenizer's"
        assert (answer["start"], answer["end"]) == (start, end), (arch, index)
        assert answer["answer"] == context[start:end]
        assert answer["no_answer_score"] == pytest.approx(null, rel=1e-3, abs=1e-9)


def test_answer_beyond_the_first_window_is_found(qa_models):
    """The best span of a context lies in a window after the first: taking only the first window misses it."""
    _, model = qa_models("bert")
    encoded = model.encoder.encode(QUESTIONS[:1], [LONG_CONTEXT])
    outputs = model.run(encoded.arrays)
    rows = encoded.rows_of(0)
    # Make the last window the one that holds the answer: its context tokens' logits raised well above the rest.
    last = rows[-1]
    in_context = np.array([s == 1 for s in encoded.sequence_ids[last]])
    length = outputs["start_logits"].shape[1]
    in_context = np.pad(in_context, (0, length - len(in_context)))
    target = int(np.flatnonzero(in_context)[-1])
    outputs["start_logits"][last, target] = outputs["end_logits"][last, target] = 50.0
    answer = QA.postprocess(outputs, encoded, None)[0]
    assert answer["start"] == encoded.offsets[last][target][0] > len(LONG_CONTEXT) // 2
    assert answer["score"] > 0.99


def test_a_question_longer_than_the_window_is_truncated_not_a_crash(qa_models):
    """No room for the context beside the question: truncated longest-first, one window (the tokenizers
    package would abort the process on a stride it cannot honour)."""
    _, model = qa_models("bert")
    question = " ".join(QUESTIONS) * 3
    answers = model.predict([question, QUESTIONS[0]], [CONTEXTS[0], LONG_CONTEXT])
    encoded = model.encoder.encode([question], [CONTEXTS[0]])
    assert encoded.sample is None and encoded.arrays["input_ids"].shape[1] == model.encoder.max_length
    assert all(a["answer"] == a["answer"].strip() for a in answers)


def test_windows_are_saved_with_the_tokenizer(qa_models):
    import json

    _, model = qa_models("bert")
    meta = json.loads((model.folder / "tokenizer" / "encoder.json").read_text())
    assert meta["windows"] == {"length": 384, "stride": 128}
    assert meta["cls_id"] == model.encoder.tokenizer.token_to_id("[CLS]")


def test_threads_sharing_a_loaded_model_answer_as_one_thread(qa_models):
    """Reading windows changes the tokenizer's truncation for the call: threads sharing one loaded model (a web
    app's workers) once saw each other's settings (a tokenizer 'Truncation error' or an ONNX Runtime shape error,
    3 calls in 120). Long contexts and short texts mixed, from 4 threads: every answer the single-thread one."""
    from concurrent.futures import ThreadPoolExecutor

    _, model = qa_models("bert")
    jobs = [(QUESTIONS[:2], [LONG_CONTEXT, CONTEXTS[1]]), (QUESTIONS[:1], CONTEXTS[:1])] * 40
    expected = [model.predict(texts, pairs) for texts, pairs in jobs[:2]]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda job: model.predict(*job), jobs))
    assert answers == expected * 40
