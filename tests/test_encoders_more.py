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
