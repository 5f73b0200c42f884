"""The FLOPs formula against PyTorch's own count on a real (tiny, random) BERT, and the ceilings."""

import time

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import BertConfig, BertModel, DistilBertConfig

from inferforge.errors import UserError
from inferforge.hardware import (
    EncoderDims,
    encoder_flops,
    measure_matmul_ceiling,
    measure_read_bandwidth,
    weight_bytes,
)


@pytest.fixture(scope="module")
def tiny_bert() -> BertModel:
    config = BertConfig(
        vocab_size=500,
        hidden_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=160,
        max_position_embeddings=128,
        attn_implementation="eager",
    )
    torch.manual_seed(0)
    return BertModel(config, add_pooling_layer=False).eval()


@pytest.mark.parametrize("batch,seq", [(1, 16), (3, 40)])
def test_flops_match_pytorch_count(tiny_bert, batch, seq):
    ids = torch.randint(0, 500, (batch, seq))
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        tiny_bert(input_ids=ids, attention_mask=torch.ones_like(ids))
    dims = EncoderDims.from_config(tiny_bert.config.to_dict())
    assert dims == EncoderDims(layers=3, hidden=64, intermediate=160, heads=4)
    assert encoder_flops(dims, batch, seq) == counter.get_total_flops()


def test_weight_bytes_match_the_module_parameters(tiny_bert):
    dims = EncoderDims.from_config(tiny_bert.config.to_dict())
    layer_params = sum(p.numel() for p in tiny_bert.encoder.parameters())
    matrices = sum(p.numel() for p in tiny_bert.encoder.parameters() if p.dim() == 2)
    assert dims.matrix_weights() + dims.vector_weights() == layer_params
    assert weight_bytes(dims, "fp32") == 4 * layer_params
    assert weight_bytes(dims, "int8") == matrices + 4 * (layer_params - matrices)


def test_distilbert_config_names_and_model_dir(tmp_path):
    config = DistilBertConfig(dim=96, n_layers=2, n_heads=3, hidden_dim=200)
    config.save_pretrained(tmp_path)
    assert EncoderDims.from_config(tmp_path) == EncoderDims(2, 96, 200, 3)


def test_unknown_config_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="BERT-like"):
        EncoderDims.from_config({"model_type": "gpt2", "n_embd": 8})
    with pytest.raises(UserError, match="config.json"):
        EncoderDims.from_config(tmp_path)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
def test_matmul_ceiling_is_a_plausible_rate(precision):
    ceiling = measure_matmul_ceiling(precision, size=256, threads=1, repeats=2)
    # 2*256^3 operations: more than 0.1 GOP/s on any CPU this runs on (even a busy one), under 100 TOP/s.
    assert 1e8 < ceiling.ops_per_second < 1e14
    assert ceiling.ops_per_second == pytest.approx(2 * 256**3 / ceiling.seconds)


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_a_precision_without_a_fast_path_is_timed_on_a_product_it_can_afford(precision):
    """Without AVX512-BF16/AMX or VNNI a 4096 product in bf16 or int8 took ~2 minutes: the size shrinks until
    one product takes about MAX_PRODUCT_SECONDS (CPUs with the fast path keep 4096), and the rate is its own."""
    from inferforge.hardware import MAX_PRODUCT_SECONDS

    start = time.perf_counter()
    ceiling = measure_matmul_ceiling(precision, size=4096, threads=1, repeats=1)
    assert 512 <= ceiling.size <= 4096 and ceiling.size % 64 == 0
    assert ceiling.seconds < 3 * MAX_PRODUCT_SECONDS
    assert ceiling.ops_per_second == pytest.approx(2 * ceiling.size**3 / ceiling.seconds)
    assert time.perf_counter() - start < 10 * MAX_PRODUCT_SECONDS


def test_the_int8_ceiling_is_the_faster_engine_and_names_it():
    """Without VNNI/AMX, PyTorch's int8 product runs on reference loops (~40x under fp32 on an AVX2 EPYC) while
    onnxruntime's MatMulInteger, the kernel of inferforge's int8 variants, runs near twice fp32: a ceiling from
    PyTorch alone made '% of ceiling' read 8000 %. The int8 ceiling is the faster of the two, and says which."""
    from inferforge.cpu import machine_info
    from inferforge.rowwise_int8 import activation_bits_for

    ceiling = measure_matmul_ceiling("int8", size=512, threads=1, repeats=2)
    assert ceiling.engine in ("torch", "onnxruntime")
    assert ceiling.size == 512
    if activation_bits_for(machine_info()) == 7:  # no VNNI / AMX int8: PyTorch's product is the slow one
        assert ceiling.engine == "onnxruntime"
    fp32 = measure_matmul_ceiling("fp32", size=512, threads=1, repeats=2)
    assert ceiling.ops_per_second > 0.5 * fp32.ops_per_second


def test_read_bandwidth_is_a_plausible_rate():
    bandwidth = measure_read_bandwidth(16 << 20, threads=1, repeats=2)
    assert bandwidth.nbytes == 16 << 20
    assert 1e8 < bandwidth.bytes_per_second < 1e12
