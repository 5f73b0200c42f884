"""Served answers equal `predict` for the tokenizer styles furthest from BERT's, on one shared Triton server.

The Triton tokenizer model re-implements what `TextEncoder` does (special tokens, token type ids, padding,
truncation, QA windows, offsets): XLNet (pads on the left, <cls> last), a T5 tokenizer as real checkpoints
have it (no classifier token, "A </s> B </s>"), XLM-RoBERTa (SentencePiece, pad id 1), ModernBERT (byte-level
BPE offsets), BART (end-of-sequence pooling), ALBERT (SentencePiece with token type ids), DistilBERT (no token
type ids), a BERT whose tokenizer adds no special tokens, FNet (no attention mask: padding would change its
answers), and ConvBERT (its convolutions read padding) with a tokenizer that pads with its end token. Requests carry several texts of mixed lengths (longer than the model reads, non-ASCII, emoji; QA
contexts of several windows) and are sent concurrently, so the dynamic batcher joins requests of different
lengths.
"""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest

import inferforge
from inferforge.tasks import get_task
from inferforge.triton.client import TritonTextClient
from inferforge.triton.repository import write_repository
from inferforge.triton.server import ServerOptions, TritonServer
from inferforge.verify import builtin_texts
from test_triton_server import assert_same_answers, local_answers
from tiny_models import build_tiny_model

pytestmark = pytest.mark.slow

MAX_BATCH = 32
STYLES = {  # served name: (architecture, task)
    "xlnet_cls": ("xlnet", "text-classification"),
    "xlnet_ner": ("xlnet", "token-classification"),
    "xlnet_qa": ("xlnet", "question-answering"),
    "t5_qa": ("t5-no-cls", "question-answering"),
    "t5_cls": ("t5-no-cls", "text-classification"),
    "xlmr_ner": ("xlm-roberta", "token-classification"),
    "modernbert_qa": ("modernbert", "question-answering"),
    "bart_cls": ("bart", "text-classification"),
    "albert_cls": ("albert", "text-classification"),
    "distilbert_qa": ("distilbert", "question-answering"),
    "plain_ner": ("bert-plain", "token-classification"),
    # No attention mask: padding changes every answer, so rows of each length run unpadded, here as in predict.
    "fnet_cls": ("fnet", "text-classification"),
    "fnet_ner": ("fnet", "token-classification"),
    # Layers that read padding (rows run at their own length) and a pad token that is the end token: a row's length is
    # its attention mask's, not up to its last token that is not the pad id (which cut every row's final [SEP]).
    "convbert_cls": ("convbert-pad-is-end", "text-classification"),
}
ODD = ["Ünïcödé text, with punctuation! And émojis 🙂 too.", "東京は日本の首都です。", "naïve café — “quoted” 🙂👍🏽 ok",
       "  leading and trailing spaces  "]


def without_classifier_token(folder):
    """T5's tokenizer as its checkpoints have it: "A </s>" and "A </s> B </s>", no <s> (the tiny T5 has one)."""
    from tokenizers import Tokenizer, processors

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    eos = ("</s>", tokenizer.token_to_id("</s>"))
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                             special_tokens=[eos])
    tokenizer.save(str(folder / "tokenizer.json"))
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        if (folder / name).exists():
            settings = json.loads((folder / name).read_text())
            for key in ("cls_token", "bos_token"):
                settings.pop(key, None)
            (folder / name).write_text(json.dumps(settings))


def pad_is_end_token(folder):
    """A tokenizer whose pad token is its end token ([SEP]), as GPT-2-style checkpoints pad with <|endoftext|>."""
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    tokenizer.pad_token = tokenizer.sep_token
    tokenizer.save_pretrained(folder)


TOKENIZER_QUIRKS = {"-no-cls": without_classifier_token, "-pad-is-end": pad_is_end_token}


@pytest.fixture(scope="module")
def served_styles(tmp_path_factory):
    root = tmp_path_factory.mktemp("served-styles")
    combined = root / "repository"
    combined.mkdir()
    folders = {}
    for name, (arch, task) in STYLES.items():
        quirk = next((q for q in TOKENIZER_QUIRKS if arch.endswith(q)), "")
        hf = build_tiny_model(root / f"hf-{name}", arch.removesuffix(quirk) if quirk else arch, task)
        if quirk:
            TOKENIZER_QUIRKS[quirk](hf)
        folders[name] = root / name
        inferforge.convert(str(hf), task, folders[name], variants="ort-fp32", shapes="1x8", nb_measures=1, warmup=0,
                           threads=1)
        repo = write_repository(folders[name], root / f"repo-{name}", name=name, max_batch_size=MAX_BATCH, threads=1)
        for model in repo.model_names:
            shutil.move(str(repo.path / model), str(combined / model))
    models = {name: inferforge.load(folder, threads=1) for name, folder in folders.items()}
    assert models["t5_qa"].encoder.cls_id == -1 and models["xlnet_cls"].encoder.tokenizer.encode("a").ids[-1] == \
        models["xlnet_cls"].encoder.cls_id  # the quirks this file is about
    convbert = models["convbert_cls"]
    assert convbert.manifest.reads_padding and convbert.encoder.tokenizer.encode("a").ids[-1] == convbert.encoder.pad_id
    with TritonServer(combined, ServerOptions(python_models=2 * len(folders), ready_timeout_s=300)) as server:
        yield server, models


def cases(task_name: str) -> list[tuple[list[str], list[str] | None]]:
    """(texts, pairs) sets for a task: short and long texts, odd characters; text pairs; QA contexts of several
    windows (the tiny models read 64 tokens)."""
    if task_name == "question-answering":
        questions, contexts = builtin_texts(get_task(task_name))
        long = [" ".join(contexts[i : i + 3]) for i in range(0, 9, 3)]
        return [(questions[:8] + questions[:3] + ODD[:2], contexts[:8] + long + [ODD[2] + " " + contexts[0], long[1]])]
    texts, _ = builtin_texts(get_task(task_name))
    singles = (texts[:12] + ODD + [" ".join(texts[:10])], None)
    if task_name != "text-classification":
        return [singles]
    questions, contexts = builtin_texts(get_task("question-answering"))
    return [singles, (questions[:6] + ODD[:2], contexts[:6] + [" ".join(contexts[:4]), ODD[2]])]


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("name", list(STYLES))
def test_served_answers_equal_predict(served_styles, name, protocol):
    """Requests of 2 texts (or pairs), 4 clients at once, then one request of all texts (QA: of all the windows
    one request may hold, MAX_BATCH): each answer is the local engine's for that text alone."""
    server, models = served_styles
    model = models[name]
    url = server.http_url if protocol == "http" else server.grpc_url
    for texts, pairs in cases(model.task.name):
        expected = local_answers(model, texts, pairs)

        def send(start: int) -> list:
            with TritonTextClient(url, protocol, name) as client:
                return client.predict(texts[start : start + 2], pairs[start : start + 2] if pairs else None)

        with ThreadPoolExecutor(4) as pool:
            concurrent = [answer for answers in pool.map(send, range(0, len(texts), 2)) for answer in answers]
        assert_same_answers(concurrent, expected)
        if pairs is not None and model.task.windows is not None:
            rows = model.encoder.encode(texts, pairs).sample or texts
            assert len(texts) < len(rows), "no context was read in several windows"
            while len(model.encoder.encode(texts, pairs).sample or texts) > MAX_BATCH:
                texts, pairs, expected = texts[:-1], pairs[:-1], expected[:-1]
        with TritonTextClient(url, protocol, name) as client:
            assert_same_answers(client.predict(texts, pairs), expected)
