"""Tiny random-weight Hugging Face models built locally (no model hub), for every task and architecture."""

from __future__ import annotations

from pathlib import Path

from inferforge.verify import builtin_texts

ARCHITECTURES = ("bert", "roberta", "distilbert")
LABELS = {
    "text-classification": ["NEGATIVE", "POSITIVE"],
    "token-classification": ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"],
}


def _training_texts() -> list[str]:
    from inferforge.tasks import get_task

    texts, _ = builtin_texts(get_task("text-classification"))
    questions, contexts = builtin_texts(get_task("question-answering"))
    return texts + questions + contexts


def build_tokenizer(folder: Path, arch: str):
    """A WordPiece tokenizer trained on real sentences, saved as a fast HF tokenizer."""
    import transformers
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.train_from_iterator(_training_texts() * 3, trainers.WordPieceTrainer(vocab_size=600, special_tokens=special))
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if arch == "bert" else [])
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, model_max_length=64, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_input_names=names,
    )
    fast.save_pretrained(folder)
    return tokenizer


def build_tiny_model(folder: Path, arch: str, task_name: str, seed: int = 0) -> Path:
    """A 2-layer, hidden-32 model of `arch` with random weights for `task_name`, saved with safetensors."""
    import torch
    import transformers

    from inferforge.tasks import get_task

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(folder, arch)
    labels = LABELS.get(task_name, ["LABEL_0", "LABEL_1"])
    common = dict(vocab_size=tokenizer.get_vocab_size(), num_labels=len(labels), id2label=dict(enumerate(labels)),
                  label2id={label: i for i, label in enumerate(labels)}, pad_token_id=tokenizer.token_to_id("[PAD]"))
    if arch == "bert":
        config = transformers.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                         intermediate_size=64, max_position_embeddings=64, **common)
    elif arch == "roberta":
        config = transformers.RobertaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                            intermediate_size=64, max_position_embeddings=66, type_vocab_size=1,
                                            **common)
    elif arch == "distilbert":
        config = transformers.DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                                               max_position_embeddings=64, **common)
    else:
        raise ValueError(arch)
    torch.manual_seed(seed)
    model = get_task(task_name).auto_model_class().from_config(config)
    model.save_pretrained(folder)
    return folder
