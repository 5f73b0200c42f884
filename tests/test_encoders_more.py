"""Sentence embeddings of text encoders transformers has beside the classification heads, each against transformers:
DPR (a sentence vector of its own and no token states), VisualBERT on its text alone (its image regions are
optional) and SAM 3's lite text encoder (convolutions along the sequence read the padding: each text is run alone)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import inferforge
import tiny_models
from tiny_models import Architecture, build_tiny_model

TEXTS = ["The film was a complete waste of two hours.", "Paris is the capital of France.", "Meh.",
         "Barack Obama was born in Honolulu, Hawaii, and later studied law at Harvard University.",
         "Zoë fuhr nach Köln und São Paulo."]
GPT_STYLE = tiny_models.TokenizerStyle("bpe", ("<pad>", "<unk>", "<s>", "</s>", "<mask>"), "<pad>", "<unk>", None, None,
                                       "<mask>", type_ids=False, lowercase=False)
EMBEDDERS = {
    "dpr": Architecture("DPRConfig", dict(tiny_models.SMALL, max_position_embeddings=64, projection_dim=16)),
    "visual-bert": Architecture("VisualBertConfig", dict(tiny_models.SMALL, max_position_embeddings=64,
                                                         visual_embedding_dim=16)),
    "sam3-lite-text": Architecture("Sam3LiteTextTextConfig", dict(hidden_size=32, intermediate_size=64,
                                                                  num_hidden_layers=2, num_attention_heads=2,
                                                                  max_position_embeddings=64), GPT_STYLE),
}


@pytest.mark.parametrize("arch", sorted(EMBEDDERS))
def test_more_text_encoders_embed_as_transformers(tmp_path, arch, monkeypatch):
    """DPR's vector is its pooler_output (a context encoder, read as its checkpoint names it; it has no
    last_hidden_state: the export failed on it). VisualBERT was refused as needing image regions, which it takes
    optionally. SAM 3's lite text encoder mixes padded positions in through its convolutions despite its mask: its
    answers changed with the texts batched with it; now each text gets the one transformers gives it alone."""
    import transformers

    monkeypatch.setitem(tiny_models.ALL_SPECS, arch, EMBEDDERS[arch])
    hf = build_tiny_model(tmp_path / "hf", arch, "feature-extraction")
    if arch == "dpr":  # a context encoder's checkpoint (AutoModel would build a question encoder)
        torch.manual_seed(1)
        transformers.DPRContextEncoder(transformers.AutoConfig.from_pretrained(hf)).save_pretrained(hf)
    result = inferforge.convert(str(hf), "feature-extraction", tmp_path / "out", variants="ort-fp32", shapes="1x8",
                                nb_measures=1, warmup=0, threads=1)
    assert result.row("ort-fp32").check.max_abs_diff < 1e-4
    assert result.report["warnings"] == []  # every weight read (DPR's context encoder too)
    tokenizer = transformers.AutoTokenizer.from_pretrained(hf)
    model = (transformers.DPRContextEncoder if arch == "dpr" else transformers.AutoModel).from_pretrained(hf).eval()
    loaded = inferforge.load(result.output)
    assert loaded.manifest.reads_padding == (arch == "sam3-lite-text")
    got = np.asarray(loaded.predict(TEXTS))
    batches = [TEXTS] if arch != "sam3-lite-text" else [[text] for text in TEXTS]  # alone, unpadded
    expected = []
    for texts in batches:
        batch = tokenizer(texts, padding=True, return_tensors="pt")
        with torch.no_grad():
            out = model(**batch)
        if arch == "dpr":
            expected.append(out.pooler_output.numpy())
        else:
            mask = batch["attention_mask"].unsqueeze(-1).float()
            expected.append(((out.last_hidden_state * mask).sum(1) / mask.sum(1)).numpy())
    np.testing.assert_allclose(got, np.concatenate(expected), atol=1e-4, rtol=1e-4)


# Families of the installed transformers no other test converts, each on one task against transformers: encoder-decoders
# with sequence-classification and question-answering heads (BigBirdPegasus, block-sparse past 7 blocks of 8 tokens:
# truncated where its full attention holds, as BigBird; MVP; PLBart), Cohere Compass's reranker head (mean-pooled scores
# over a sliding-window backbone), text encoders read for sentence embeddings (EmbeddingGemma 2, Gemma 3 with
# bidirectional attention as EmbeddingGemma, CLIP's text tower, BertGeneration) and translation models read by their
# encoder stack, as sentence-transformers reads them (M2M100, Marian, Blenderbot, ProphetNet).
ENCODER_DECODER_64 = dict(tiny_models.ENCODER_DECODER, max_position_embeddings=64)
TWO_ROPES = {kind: {"rope_type": "default", "rope_theta": 10000.0} for kind in ("full_attention", "sliding_attention")}
FAMILIES = {
    "bigbird-pegasus": (Architecture("BigBirdPegasusConfig", dict(ENCODER_DECODER_64, attention_type="block_sparse",
                                                                  block_size=8, num_random_blocks=1),
                                     tiny_models.XLMR_STYLE), ("text-classification", "question-answering")),
    "mvp": (Architecture("MvpConfig", ENCODER_DECODER_64, tiny_models.XLMR_STYLE), ("question-answering",)),
    "plbart": (Architecture("PLBartConfig", ENCODER_DECODER_64, tiny_models.XLMR_STYLE), ("text-classification",)),
    "cohere-compass-text": (Architecture("CohereCompassTextConfig", dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
        max_position_embeddings=64, sliding_window=4, layer_types=["sliding_attention", "full_attention"],
        rope_parameters=TWO_ROPES, pooling="mean"), tiny_models.XLMR_STYLE), ("text-classification",)),
    "embedding-gemma2": (Architecture("EmbeddingGemma2TextConfig", dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
        head_dim=16, max_position_embeddings=64, sliding_window=4, hidden_size_per_layer_input=8, embedding_dim=16),
        tiny_models.XLMR_STYLE), ("feature-extraction",)),
    "gemma3-bidirectional": (Architecture("Gemma3TextConfig", dict(tiny_models.GEMMA, use_bidirectional_attention=True),
                                          tiny_models.XLMR_STYLE), ("feature-extraction",)),
    "clip-text": (Architecture("CLIPTextConfig", dict(tiny_models.SMALL, max_position_embeddings=64), GPT_STYLE),
                  ("feature-extraction",)),
    "bert-generation": (Architecture("BertGenerationConfig", dict(tiny_models.SMALL, max_position_embeddings=64)),
                        ("feature-extraction",)),
    "m2m100": (Architecture("M2M100Config", ENCODER_DECODER_64, tiny_models.XLMR_STYLE), ("feature-extraction",)),
    "marian": (Architecture("MarianConfig", ENCODER_DECODER_64, tiny_models.XLMR_STYLE), ("feature-extraction",)),
    "blenderbot": (Architecture("BlenderbotConfig", ENCODER_DECODER_64, tiny_models.XLMR_STYLE), ("feature-extraction",)),
    "prophetnet": (Architecture("ProphetNetConfig", dict(
        hidden_size=32, encoder_ffn_dim=64, decoder_ffn_dim=64, num_encoder_layers=2, num_decoder_layers=1,
        num_encoder_attention_heads=2, num_decoder_attention_heads=2, max_position_embeddings=64, ngram=2),
        tiny_models.XLMR_STYLE), ("feature-extraction",)),
    # Its whole model needs decoder inputs: embeddings read its encoder stack, as sentence-transformers does (it was
    # refused: "tracing it on 2 texts of 8 tokens fails (You must specify exactly one of input_ids or inputs_embeds)").
    "t5gemma2": (tiny_models.MORE_SPECS["t5gemma2"], ("feature-extraction",)),
}


@pytest.mark.parametrize("arch, task", [(arch, task) for arch, (_, tasks) in FAMILIES.items() for task in tasks])
def test_more_families_answer_as_transformers(tmp_path, arch, task, monkeypatch):
    """Each family converted (onnxruntime fp32, verified within 1e-4) gives transformers' numbers for the same tokens:
    texts and text pairs or question and context, and a text far over the limit, cut where inferforge cuts it;
    sentence embeddings are the token states (an encoder-decoder's encoder's) mean-pooled."""
    import test_convert

    monkeypatch.setitem(tiny_models.ALL_SPECS, arch, FAMILIES[arch][0])
    hf = build_tiny_model(tmp_path / "hf", arch, task)
    result = inferforge.convert(str(hf), task, tmp_path / "out", variants="ort-fp32", shapes="1x8", nb_measures=1,
                                warmup=0, threads=1)
    assert result.row("ort-fp32").check.max_abs_diff < 1e-4
    model = inferforge.load(result.output)
    if task != "feature-extraction":
        pairs = test_convert.CONTEXTS if task == "question-answering" else None
        test_convert.assert_matches_transformers(model, hf, task, test_convert.QUESTIONS if pairs else TEXTS, pairs)
        if task == "text-classification":
            test_convert.assert_matches_transformers(model, hf, task, TEXTS[:2], TEXTS[2:4])
        test_convert.assert_longest_input_matches_transformers(model, hf, task)
        return
    test_convert.assert_mean_pooled_matches_transformers(model, hf, TEXTS, encoder_only=True)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_a_sentence_transformers_loading_dtype_is_said_and_a_bad_one_refused(tmp_path, dtype):
    """model_kwargs {"dtype": ...} of a sentence-transformers directory (the library loads the model and computes its
    embeddings in that precision) was dropped without a word. Now: read in fp32, the reference (the embeddings are
    the library's in fp32, and within that rounding of the library's own half-precision ones), and one sentence in
    the report's warnings says so; a value the library cannot load with either ('torch.bfloat16', 'float12')
    is refused in one sentence, nothing written."""
    from sentence_transformers import SentenceTransformer

    from inferforge.errors import UserError
    from test_sentence_embedding import _edit_json, library_embeddings, save_sentence_transformer

    from test_sentence_embedding import TEXTS as texts

    folder = save_sentence_transformer(tmp_path / "st", "bert", "mean", ["normalize"])
    in_fp32 = library_embeddings(folder)
    _edit_json(folder / "sentence_bert_config.json", model_kwargs={"dtype": dtype})
    library = SentenceTransformer(str(folder), device="cpu")
    assert str(library.dtype) == f"torch.{dtype}"
    reduced = library.encode(texts, convert_to_numpy=True, batch_size=len(texts)).astype(np.float32)
    result = inferforge.convert(str(folder), "feature-extraction", tmp_path / "out", variants="ort-fp32", shapes="1x8",
                                nb_measures=1, warmup=0, threads=1)
    got = np.asarray(inferforge.load(result.output).predict(texts), dtype=np.float32)
    np.testing.assert_allclose(got, in_fp32, atol=1e-4, rtol=1e-4)
    assert (got * reduced).sum(-1).min() > 0.99  # normalized: the cosine with the library's reduced-precision vectors
    assert result.report["warnings"] == [
        f"'{folder}' asks sentence-transformers to load it in {dtype} (dtype in its model_kwargs), which the library "
        "computes its outputs in; inferforge reads it in float32, the reference every variant is checked against, so "
        "its outputs differ from the library's by that rounding only (the bf16 variants run it at reduced precision)."]
    for bad in ("torch.bfloat16", "float12"):
        _edit_json(folder / "sentence_bert_config.json", model_kwargs={"torch_dtype": bad})
        with pytest.raises(UserError) as error:
            inferforge.convert(str(folder), "feature-extraction", tmp_path / "bad", variants="ort-fp32", shapes="1x8")
        assert str(error.value) == (
            f"'{folder}' asks sentence-transformers to load it with torch_dtype={bad!r} (model_kwargs in its "
            "sentence_bert_config.json), which is neither 'auto' nor the name of a floating-point torch dtype such as "
            "'float32' or 'bfloat16'; sentence-transformers cannot load the folder with it either.")
        assert not (tmp_path / "bad").exists()

