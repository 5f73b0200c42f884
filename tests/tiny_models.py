"""Tiny random-weight Hugging Face models built locally (no model hub), for every task and architecture.

Each architecture is a config (hidden 32, 2 layers, a vocabulary of a few hundred tokens) and a tokenizer
trained here on the built-in sentences, in the style its real checkpoints use: WordPiece with [CLS]/[SEP]
and token type ids (BERT, ELECTRA, ConvBERT), WordPiece with <s>/</s> (MPNet), SentencePiece-style Unigram
with [CLS]/[SEP] (ALBERT, DeBERTa-v2) or <s>/</s> and <pad> = 1 (XLM-RoBERTa, CamemBERT), byte-level BPE
(DeBERTa, ModernBERT), and a BERT whose tokenizer adds no special tokens and gives no token type ids.
MORE_SPECS holds three dozen more encoders (checked on fewer tasks), XLNet's left-padding tokenizer among them;
REFUSED_SPECS the encoders inferforge refuses in one sentence (layout boxes, tables, language ids, shapes fixed by
tracing).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from inferforge.verify import builtin_texts

LABELS = {
    "text-classification": ["NEGATIVE", "POSITIVE"],
    "token-classification": ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"],
}
SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
# Weights far from zero, so logits differ clearly between tokens and spans (no near-ties that a 1e-7
# rounding difference flips) and a wrong input or position shows up in the numbers.
INIT = dict(initializer_range=0.2)


@dataclass(frozen=True)
class TokenizerStyle:
    model: str  # "wordpiece" | "unigram" | "bpe"
    specials: tuple[str, ...]  # in vocabulary order: pad, unk, cls/bos, sep/eos, mask (names below)
    pad: str
    unk: str
    cls: str | None  # None: the tokenizer adds no special tokens at all
    sep: str | None
    mask: str
    pair_double_sep: bool = False  # RoBERTa style "<s> A </s></s> B </s>"
    type_ids: bool = True  # the tokenizer hands the model token_type_ids
    lowercase: bool = True
    cls_last: bool = False  # XLNet style "A <sep> <cls>": the summary token at the end
    padding_side: str = "right"
    question: str | None = None  # Splinter style "[CLS] Q [QUESTION] . [SEP] C [SEP]": the model finds it by its id


BERT_STYLE = TokenizerStyle("wordpiece", ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"), "[PAD]", "[UNK]", "[CLS]",
                            "[SEP]", "[MASK]")
ROBERTA_WORDPIECE = TokenizerStyle("wordpiece", ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"), "[PAD]", "[UNK]",
                                   "[CLS]", "[SEP]", "[MASK]", type_ids=False)
MPNET_STYLE = TokenizerStyle("wordpiece", ("<s>", "<pad>", "</s>", "<unk>", "<mask>"), "<pad>", "<unk>", "<s>", "</s>",
                             "<mask>", pair_double_sep=True, type_ids=False)
ALBERT_STYLE = TokenizerStyle("unigram", ("<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"), "<pad>", "<unk>", "[CLS]",
                              "[SEP]", "[MASK]")
DEBERTA_V2_STYLE = TokenizerStyle("unigram", ("[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"), "[PAD]", "[UNK]", "[CLS]",
                                  "[SEP]", "[MASK]", type_ids=False, lowercase=False)
XLMR_STYLE = TokenizerStyle("unigram", ("<s>", "<pad>", "</s>", "<unk>", "<mask>"), "<pad>", "<unk>", "<s>", "</s>",
                            "<mask>", pair_double_sep=True, type_ids=False, lowercase=False)
DEBERTA_STYLE = TokenizerStyle("bpe", ("[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"), "[PAD]", "[UNK]", "[CLS]",
                               "[SEP]", "[MASK]", type_ids=False, lowercase=False)
MODERNBERT_STYLE = TokenizerStyle("bpe", ("[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"), "[PAD]", "[UNK]", "[CLS]",
                                  "[SEP]", "[MASK]", type_ids=False, lowercase=False)
XLNET_STYLE = TokenizerStyle("unigram", ("<unk>", "<s>", "</s>", "<cls>", "<sep>", "<pad>", "<mask>"), "<pad>", "<unk>",
                             "<cls>", "<sep>", "<mask>", type_ids=False, lowercase=False, cls_last=True,
                             padding_side="left")
SPLINTER_STYLE = TokenizerStyle("wordpiece", ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[QUESTION]"), "[PAD]",
                                "[UNK]", "[CLS]", "[SEP]", "[MASK]", question="[QUESTION]")
PLAIN_STYLE = TokenizerStyle("wordpiece", ("[PAD]", "[UNK]", "[MASK]"), "[PAD]", "[UNK]", None, None, "[MASK]",
                             type_ids=False)


@dataclass(frozen=True)
class Architecture:
    config_class: str
    config: dict = field(default_factory=dict)
    tokenizer: TokenizerStyle = BERT_STYLE


SPECS: dict[str, Architecture] = {
    "bert": Architecture("BertConfig", dict(SMALL, max_position_embeddings=64)),
    "roberta": Architecture("RobertaConfig", dict(SMALL, max_position_embeddings=66, type_vocab_size=1),
                            ROBERTA_WORDPIECE),
    "distilbert": Architecture("DistilBertConfig", dict(dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                                                        max_position_embeddings=64), ROBERTA_WORDPIECE),
    # A BERT checkpoint whose tokenizer neither adds [CLS]/[SEP] nor gives token type ids.
    "bert-plain": Architecture("BertConfig", dict(SMALL, max_position_embeddings=64), PLAIN_STYLE),
    "albert": Architecture("AlbertConfig", dict(SMALL, embedding_size=16, max_position_embeddings=64), ALBERT_STYLE),
    "electra": Architecture("ElectraConfig", dict(SMALL, embedding_size=16, max_position_embeddings=64)),
    "mpnet": Architecture("MPNetConfig", dict(SMALL, max_position_embeddings=66),
                          MPNET_STYLE),
    "xlm-roberta": Architecture("XLMRobertaConfig", dict(SMALL, max_position_embeddings=66, type_vocab_size=1),
                                XLMR_STYLE),
    "camembert": Architecture("CamembertConfig", dict(SMALL, max_position_embeddings=66, type_vocab_size=1),
                              XLMR_STYLE),
    "deberta-v2": Architecture("DebertaV2Config", dict(SMALL, max_position_embeddings=64, type_vocab_size=0,
                                                       relative_attention=True, position_buckets=16,
                                                       max_relative_positions=-1, pos_att_type=["p2c", "c2p"],
                                                       position_biased_input=False, norm_rel_ebd="layer_norm",
                                                       share_att_key=True), DEBERTA_V2_STYLE),
    "deberta": Architecture("DebertaConfig", dict(SMALL, max_position_embeddings=64, type_vocab_size=0,
                                                  relative_attention=True, max_relative_positions=-1,
                                                  pos_att_type=["c2p", "p2c"], position_biased_input=False),
                            DEBERTA_STYLE),
    "convbert": Architecture("ConvBertConfig", dict(SMALL, num_attention_heads=4, embedding_size=32, head_ratio=2,
                                                    conv_kernel_size=3, max_position_embeddings=64)),
    "modernbert": Architecture("ModernBertConfig", dict(SMALL, max_position_embeddings=64, local_attention=8,
                                                        global_attn_every_n_layers=2), MODERNBERT_STYLE),
}
ARCHITECTURES = tuple(SPECS)

# More encoders transformers has, checked on fewer tasks (tests/test_convert.py::test_more_encoders).
ROBERTA_POSITIONS = dict(SMALL, max_position_embeddings=66, type_vocab_size=1)
ENCODER_DECODER = dict(d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
                       decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64)
GEMMA = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
             head_dim=16, max_position_embeddings=64, sliding_window=4, layer_types=["sliding_attention", "full_attention"])
MORE_SPECS: dict[str, Architecture] = {
    "mobilebert": Architecture("MobileBertConfig", dict(SMALL, embedding_size=16, intra_bottleneck_size=16,
                                                        true_hidden_size=16, num_feedforward_networks=1,
                                                        max_position_embeddings=64)),
    "squeezebert": Architecture("SqueezeBertConfig", dict(SMALL, embedding_size=32, q_groups=2, k_groups=2, v_groups=2,
                                                          post_attention_groups=2, intermediate_groups=2,
                                                          output_groups=2, max_position_embeddings=64)),
    # Block-sparse past (5 + 2 * 1) * 8 = 56 tokens: inferforge truncates there (full attention up to it).
    "big-bird": Architecture("BigBirdConfig", dict(SMALL, attention_type="block_sparse", block_size=8,
                                                   num_random_blocks=1, max_position_embeddings=64)),
    "rembert": Architecture("RemBertConfig", dict(SMALL, input_embedding_size=16, output_embedding_size=16,
                                                  max_position_embeddings=64)),
    "roformer": Architecture("RoFormerConfig", dict(SMALL, embedding_size=32, max_position_embeddings=64)),
    "ernie": Architecture("ErnieConfig", dict(SMALL, max_position_embeddings=64)),
    "megatron-bert": Architecture("MegatronBertConfig", dict(SMALL, max_position_embeddings=64)),
    "roc-bert": Architecture("RoCBertConfig", dict(SMALL, max_position_embeddings=64)),
    "nomic-bert": Architecture("NomicBertConfig", dict(SMALL, max_position_embeddings=64)),
    "ultrabert": Architecture("UltrabertConfig", dict(SMALL, max_position_embeddings=64)),
    "yoso": Architecture("YosoConfig", dict(SMALL, max_position_embeddings=66), ROBERTA_WORDPIECE),
    "gte": Architecture("GteConfig", dict(SMALL, max_position_embeddings=64), ROBERTA_WORDPIECE),
    "data2vec-text": Architecture("Data2VecTextConfig", ROBERTA_POSITIONS, XLMR_STYLE),
    "xlm-roberta-xl": Architecture("XLMRobertaXLConfig", ROBERTA_POSITIONS, XLMR_STYLE),
    "roberta-prelayernorm": Architecture("RobertaPreLayerNormConfig", ROBERTA_POSITIONS, XLMR_STYLE),
    "ibert": Architecture("IBertConfig", ROBERTA_POSITIONS, XLMR_STYLE),
    "luke": Architecture("LukeConfig", dict(ROBERTA_POSITIONS, entity_vocab_size=10, entity_emb_size=16), XLMR_STYLE),
    # X-MOD with a default language: its adapters need no language id per text.
    "xmod": Architecture("XmodConfig", dict(ROBERTA_POSITIONS, languages=["en_XX", "de_DE"], default_language="en_XX"),
                         XLMR_STYLE),
    "jina-embeddings-v3": Architecture("JinaEmbeddingsV3Config", dict(SMALL, max_position_embeddings=66), XLMR_STYLE),
    "esm": Architecture("EsmConfig", dict(SMALL, max_position_embeddings=66, mask_token_id=4,
                                          position_embedding_type="rotary"), XLMR_STYLE),
    "esmc": Architecture("EsmcConfig", dict(SMALL), XLMR_STYLE),
    "eurobert": Architecture("EuroBertConfig", dict(SMALL, num_key_value_heads=2, max_position_embeddings=64),
                             XLMR_STYLE),
    "xlm": Architecture("XLMConfig", dict(emb_dim=32, n_layers=2, n_heads=2, max_position_embeddings=64), XLMR_STYLE),
    "flaubert": Architecture("FlaubertConfig", dict(emb_dim=32, n_layers=2, n_heads=2, max_position_embeddings=64),
                             XLMR_STYLE),
    # Its tokenizer pads on the left and puts <cls> last; the classification head reads the last position.
    "xlnet": Architecture("XLNetConfig", dict(d_model=32, n_layer=2, n_head=2, d_inner=64), XLNET_STYLE),
    # As its checkpoints set it (uw-madison/nystromformer-512): as many landmarks as segment means, exact attention
    # at every length (fewer landmarks fix the length, see REFUSED_SPECS).
    "nystromformer-512": Architecture("NystromformerConfig", dict(SMALL, max_position_embeddings=66, num_landmarks=64,
                                                                  segment_means_seq_len=64)),
    # A question-answering head only (its sentence-level check is the base model's pooled embedding).
    "splinter": Architecture("SplinterConfig", dict(SMALL, max_position_embeddings=64), SPLINTER_STYLE),
    # A bidirectional mixture-of-experts encoder with sliding-window attention and a token-classification head only.
    "openai-privacy-filter": Architecture("OpenAIPrivacyFilterConfig", dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=16,
        intermediate_size=32, num_local_experts=4, num_experts_per_tok=2, sliding_window=4,
        max_position_embeddings=64), XLMR_STYLE),
    # No attention: tokens mixed by a 2-D Fourier transform (torch.fft, which has no ONNX export: inferforge
    # exports it as matrix products).
    "fnet": Architecture("FNetConfig", dict(hidden_size=32, num_hidden_layers=2, intermediate_size=64,
                                            max_position_embeddings=64)),
    # Encoder-decoders: their classification heads pool the end-of-sequence token (and refuse a row without one);
    # sentence embeddings read T5's encoder alone (T5EncoderModel), as sentence-transformers does.
    "t5": Architecture("T5Config", dict(d_model=32, d_kv=16, d_ff=64, num_layers=2, num_heads=2,
                                        decoder_start_token_id=0), XLMR_STYLE),
    "bart": Architecture("BartConfig", dict(d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
                                            decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                                            max_position_embeddings=64), XLMR_STYLE),
    # Encoder-decoders again: UMT5 (a relative position bias in every layer), mBART (pre-layer-norm BART), T5Gemma
    # (Gemma blocks with sliding-window attention on both sides; a token-classification head too).
    "umt5": Architecture("UMT5Config", dict(d_model=32, d_kv=16, d_ff=64, num_layers=2, num_decoder_layers=1,
                                            num_heads=2, decoder_start_token_id=0), XLMR_STYLE),
    "mbart": Architecture("MBartConfig", dict(ENCODER_DECODER, max_position_embeddings=64), XLMR_STYLE),
    "t5gemma": Architecture("T5GemmaConfig", dict(encoder=dict(GEMMA, vocab_size=600), decoder=dict(
        GEMMA, vocab_size=600, num_hidden_layers=1, layer_types=["full_attention"])), XLMR_STYLE),
}
# Text encoders that also read images (an optional `pixel_values`), converted for their text-only path, the one a
# text query goes through: ModernVBERT (ModernBERT inside), UltraVBERT (UltraBERT inside) and T5Gemma 2 (Gemma 3
# blocks whose encoder layers combine sliding-window and padding masks, built by torch.vmap in transformers).
SIGLIP = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=16,
              patch_size=4)
MORE_SPECS.update({
    "modernvbert": Architecture("ModernVBertConfig", dict(text_config=dict(
        SMALL, vocab_size=600, pad_token_id=3, cls_token_id=1, sep_token_id=2, max_position_embeddings=64,
        local_attention=8, global_attn_every_n_layers=2, **INIT), vision_config=SIGLIP, pixel_shuffle_factor=2),
        MODERNBERT_STYLE),
    "ultravbert": Architecture("UltraVBertConfig", dict(text_config=dict(
        SMALL, vocab_size=600, pad_token_id=0, max_position_embeddings=64, **INIT), vision_config=SIGLIP,
        pixel_shuffle_factor=2)),
    "t5gemma2": Architecture("T5Gemma2Config", dict(encoder=dict(text_config=dict(GEMMA, vocab_size=600),
                                                                 vision_config=SIGLIP),
                                                    decoder=dict(GEMMA, vocab_size=600, num_hidden_layers=1,
                                                                 layer_types=["full_attention"])), XLMR_STYLE),
})
MORE_ARCHITECTURES = tuple(MORE_SPECS)

# Encoders inferforge refuses, each with the one sentence that says why (tests/test_cli_errors.py, test_convert.py).
REFUSED_SPECS: dict[str, Architecture] = {
    "layoutlm": Architecture("LayoutLMConfig", dict(SMALL, max_position_embeddings=64)),  # a box per token
    "xmod-no-language": Architecture("XmodConfig", ROBERTA_POSITIONS, XLMR_STYLE),  # a language id per text
    "xlm-languages": Architecture("XLMConfig", dict(emb_dim=32, n_layers=2, n_heads=2, max_position_embeddings=64,
                                                    use_lang_emb=True, n_langs=2), XLMR_STYLE),
    # The sequence length becomes Python numbers while tracing: attention-window padding, pooled blocks.
    # torch.onnx.export(dynamo=True) with a dynamic sequence Dim does no better (torch 2.13, transformers 5.23):
    # Longformer's chunk count is data-dependent for torch.export (GuardOnDataDependentSymNode in _chunk), and
    # Funnel's graph comes out with the sequence fixed at the traced 8 tokens.
    "longformer": Architecture("LongformerConfig", dict(ROBERTA_POSITIONS, attention_window=4), XLMR_STYLE),
    "funnel": Architecture("FunnelConfig", dict(d_model=32, n_head=2, d_head=16, d_inner=64, block_sizes=[1, 1],
                                                num_decoder_layers=1, max_position_embeddings=64)),
    "nystromformer": Architecture("NystromformerConfig", dict(SMALL, max_position_embeddings=66, num_landmarks=4,
                                                              segment_means_seq_len=64)),
    "mra": Architecture("MraConfig", dict(SMALL, max_position_embeddings=66), ROBERTA_WORDPIECE),  # CUDA-only attention
    # Reversible layers run as a custom torch.autograd.Function, which the exporter cannot trace.
    "reformer": Architecture("ReformerConfig", dict(hidden_size=32, num_attention_heads=2, attention_head_size=16,
                                                    feed_forward_size=64, attn_layers=["local", "lsh"],
                                                    axial_pos_shape=[8, 8], axial_pos_embds_dim=[16, 16],
                                                    max_position_embeddings=64, local_attn_chunk_length=8,
                                                    lsh_attn_chunk_length=8, is_decoder=False), XLMR_STYLE),
    # More than text: layout boxes (LiLT, BROS, LayoutLMv3), XPaths (MarkupLM).
    "lilt": Architecture("LiltConfig", dict(ROBERTA_POSITIONS, channel_shrink_ratio=2), XLMR_STYLE),
    "bros": Architecture("BrosConfig", dict(SMALL, max_position_embeddings=64)),
    "layoutlmv3": Architecture("LayoutLMv3Config", dict(ROBERTA_POSITIONS, visual_embed=False), XLMR_STYLE),
    "markuplm": Architecture("MarkupLMConfig", ROBERTA_POSITIONS, XLMR_STYLE),
    # A mixture of experts whose experts run in a Python loop over the experts the tokens hit: the graph holds
    # for the traced tokens only (transformers has no batched implementation for it to switch to).
    "switch-transformers": Architecture("SwitchTransformersConfig", dict(d_model=32, d_kv=16, d_ff=64, num_layers=2,
                                                                         num_decoder_layers=1, num_heads=2,
                                                                         num_experts=4, encoder_sparse_step=1,
                                                                         decoder_sparse_step=1), XLMR_STYLE),
    # A table beside the question: a segment, column, row and ranks per token (token_type_ids of 7 kinds).
    "tapas": Architecture("TapasConfig", dict(SMALL, max_position_embeddings=64)),
    # Longformer's attention windows in an encoder-decoder: the same Python branches on the mask, frozen by the trace.
    "led": Architecture("LEDConfig", dict(ENCODER_DECODER, max_encoder_position_embeddings=64,
                                          max_decoder_position_embeddings=64, attention_window=4), XLMR_STYLE),
    # Unicode code points in, cut to molecules of 4 by a strided convolution: a text under 4 characters fails in
    # PyTorch (its checkpoints' CanineTokenizer is refused first, being Python only).
    "canine": Architecture("CanineConfig", dict(SMALL, max_position_embeddings=64, num_hash_buckets=64,
                                                downsampling_rate=4)),
    # Image regions beside the text (visual_feats, visual_pos).
    "lxmert": Architecture("LxmertConfig", dict(hidden_size=32, num_attention_heads=2, intermediate_size=64,
                                                l_layers=1, x_layers=1, r_layers=1, visual_feat_dim=8,
                                                visual_pos_dim=4, num_qa_labels=3, max_position_embeddings=64)),
}
# Encoder-decoders with no encoder-only head, read for sentence embeddings by their encoder stack, as
# sentence-transformers reads them (tests/test_sentence_embedding.py).
EMBEDDING_SPECS: dict[str, Architecture] = {
    "pegasus": Architecture("PegasusConfig", dict(d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
                                                  decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                                                  max_position_embeddings=64), XLMR_STYLE),
}
ALL_SPECS = {**SPECS, **MORE_SPECS, **REFUSED_SPECS, **EMBEDDING_SPECS}


def _training_texts() -> list[str]:
    from inferforge.tasks import get_task

    texts, _ = builtin_texts(get_task("text-classification"))
    questions, contexts = builtin_texts(get_task("question-answering"))
    return texts + questions + contexts


def _wordpiece_vocab(normalizer, pre_tokenizer, specials: list[str], size: int = 600) -> dict[str, int]:
    """A WordPiece vocabulary counted here rather than by tokenizers' WordPieceTrainer, whose ties fall by hash
    order (another vocabulary in every process, so tests saw other token ids in CI than at home): the specials,
    every character alone and as a continuation, then the most frequent words (ties alphabetical)."""
    from collections import Counter

    counts = Counter(word for text in _training_texts()
                     for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    chars = sorted({c for word in counts for c in word})
    vocab = [*specials, *chars, *("##" + c for c in chars)]
    words = [w for w, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0])) if w not in vocab]
    return {token: i for i, token in enumerate(vocab + words[:max(0, size - len(vocab))])}


def build_tokenizer(folder: Path, arch: str):
    """A tokenizer of the architecture's style trained on real sentences, saved as a fast HF tokenizer."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    style = ALL_SPECS[arch].tokenizer
    special = list(style.specials)
    trainer = None
    if style.model == "wordpiece":
        normalizer = normalizers.BertNormalizer(lowercase=style.lowercase)
        pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer = Tokenizer(models.WordPiece(_wordpiece_vocab(normalizer, pre_tokenizer, special), unk_token=style.unk))
        tokenizer.normalizer, tokenizer.pre_tokenizer = normalizer, pre_tokenizer
        tokenizer.decoder = decoders.WordPiece()
    elif style.model == "unigram":  # SentencePiece style: "▁" marks a word start, offsets include it
        tokenizer = Tokenizer(models.Unigram())
        tokenizer.normalizer = normalizers.Sequence(
            [normalizers.NFKC(), *([normalizers.Lowercase()] if style.lowercase else [])])
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
        tokenizer.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=600, special_tokens=special, unk_token=style.unk)
    else:  # byte-level BPE, GPT-2 style
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=special,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    if trainer is not None:
        tokenizer.train_from_iterator(_training_texts() * 3, trainer)
    if style.model == "unigram":  # scores summed, and characters ranked, otherwise in every process: made canonical
        trained = json.loads(tokenizer.to_str())["model"]
        pieces = {piece: round(score, 8) for piece, score in trained["vocab"]}
        lowest = min(pieces.values())
        pieces.update({piece: lowest for piece in pieces if len(piece) == 1 and piece not in special})
        ordered = special + sorted(set(pieces) - set(special), key=lambda piece: (-pieces[piece], piece))
        tokenizer.model = models.Unigram([(piece, pieces[piece]) for piece in ordered], ordered.index(style.unk),
                                         trained.get("byte_fallback", False))
    if style.cls is not None:
        cls, sep = style.cls, style.sep
        second = f"{sep} $B:1 {sep}:1" if style.pair_double_sep else f"$B:1 {sep}:1"
        single, pair = f"{cls} $A {sep}", f"{cls} $A {sep} {second}"
        if style.cls_last:
            single, pair = f"$A {sep} {cls}", f"$A {sep} $B:1 {sep}:1 {cls}:1"
        marks = [(cls, tokenizer.token_to_id(cls)), (sep, tokenizer.token_to_id(sep))]
        if style.question:
            pair = f"{cls} $A {style.question} . {sep} $B:1 {sep}:1"
            marks += [(style.question, tokenizer.token_to_id(style.question)), (".", tokenizer.token_to_id("."))]
        tokenizer.post_processor = processors.TemplateProcessing(single=single, pair=pair, special_tokens=marks)
        if style.model == "bpe":
            tokenizer.post_processor = processors.Sequence(
                [processors.ByteLevel(trim_offsets=True), tokenizer.post_processor])
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if style.type_ids else [])
    extra = {"cls_token": style.cls, "sep_token": style.sep} if style.cls else {}
    if style.cls and style.cls.startswith("<"):
        extra.update(bos_token=style.cls, eos_token=style.sep)
    if style.question:
        extra.update(additional_special_tokens=[style.question])
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, model_max_length=64, unk_token=style.unk, pad_token=style.pad,
        mask_token=style.mask, model_input_names=names, padding_side=style.padding_side, **extra,
    )
    fast.save_pretrained(folder)
    return tokenizer


def build_tiny_model(folder: Path, arch: str, task_name: str, seed: int = 0) -> Path:
    """A 2-layer, hidden-32 model of `arch` with random weights for `task_name`, saved with safetensors."""
    import torch
    import transformers

    from inferforge.tasks import get_task

    spec = ALL_SPECS[arch]
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(folder, arch)
    style = spec.tokenizer
    labels = LABELS.get(task_name, ["LABEL_0", "LABEL_1"])
    ids = {name: tokenizer.token_to_id(token) for name, token in
           (("pad_token_id", style.pad), ("bos_token_id", style.cls), ("eos_token_id", style.sep),
            ("cls_token_id", style.cls), ("sep_token_id", style.sep), ("question_token_id", style.question))
           if token is not None}
    config = getattr(transformers, spec.config_class)(
        vocab_size=tokenizer.get_vocab_size(), num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)}, **ids, **INIT, **spec.config,
    )
    torch.manual_seed(seed)
    model = get_task(task_name).auto_model_class().from_config(config)
    model.save_pretrained(folder)
    return folder


def build_custom_code_model(folder: Path, base_model_body: str = "") -> Path:
    """A tiny BERT classifier that ships its own Python code (config.json `auto_map`), as nomic-embed, Jina v2 or
    gte-v1.5 checkpoints do: transformers loads it only with trust_remote_code. `base_model_body`: Python lines
    (indented 4 spaces, `torch` imported) added to the base model's class (AutoModel, feature extraction)."""
    import json

    build_tiny_model(folder, "bert", "text-classification")
    (folder / "configuration_custom.py").write_text(
        "from transformers import BertConfig\n\n\nclass CustomConfig(BertConfig):\n    model_type = 'custom-bert'\n")
    (folder / "modeling_custom.py").write_text(
        "import torch\nfrom transformers import BertForSequenceClassification, BertModel\n\n"
        "from .configuration_custom import CustomConfig\n\n\n"
        f"class CustomModel(BertModel):\n    config_class = CustomConfig\n{base_model_body}\n\n"
        "class CustomForSequenceClassification(BertForSequenceClassification):\n    config_class = CustomConfig\n")
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="custom-bert", architectures=["CustomForSequenceClassification"], auto_map={
        "AutoConfig": "configuration_custom.CustomConfig", "AutoModel": "modeling_custom.CustomModel",
        "AutoModelForSequenceClassification": "modeling_custom.CustomForSequenceClassification"})
    (folder / "config.json").write_text(json.dumps(config))
    return folder
# Encoders that cut the sequence into blocks (LongT5's local and transient-global attention, PegasusX's block-local
# attention): the export pads every text to a multiple of the block length itself (tests/test_sentence_embedding.py).
LONG_T5 = dict(d_model=32, d_kv=16, d_ff=64, num_layers=2, num_decoder_layers=1, num_heads=2, decoder_start_token_id=0,
               local_radius=3)
EMBEDDING_SPECS.update({
    # Blocks of 3 and global blocks of 4 (a power of two, as the checkpoints' 16: transformers finds a token's global
    # block by a cumulative sum of 1 / global_block_size, which a float rounds differently per runtime otherwise).
    "longt5-tglobal": Architecture("LongT5Config", dict(LONG_T5, encoder_attention_type="transient-global",
                                                        local_radius=2, global_block_size=4), XLMR_STYLE),
    "longt5-local": Architecture("LongT5Config", dict(LONG_T5, encoder_attention_type="local"), XLMR_STYLE),
    "pegasus-x": Architecture("PegasusXConfig", dict(ENCODER_DECODER, max_position_embeddings=64, block_size=4,
                                                     num_global_tokens=3, stagger_local_blocks=True), XLMR_STYLE),
})
ALL_SPECS.update(EMBEDDING_SPECS)
# Longformer and LED convert since their attention windows export (inferforge.export.windowed_attention): no longer
# refused (tests/test_encoder_sweep.py). Still in ALL_SPECS under their names.
WINDOWED_SPECS: dict[str, Architecture] = {name: REFUSED_SPECS.pop(name) for name in ("longformer", "led")}
