"""PyTorch to ONNX: one wrapper per task so the graph outputs exactly the task's tensors."""

from __future__ import annotations

import inspect
import re
import warnings
from contextlib import contextmanager, nullcontext
from pathlib import Path

import onnx
import torch

from inferforge.errors import UserError, first_line
from inferforge.source import Pooling, SourceModel, model_input_names
from inferforge.tasks import TaskSpec

OPSET = 17
MAX_OPSET = 20  # the TorchScript exporter's newest; onnxruntime and OpenVINO read it
TWO_GB = 2 * 1024**3
EXTERNAL_DATA_SUFFIX = ".data"


def forward_input_names(model: torch.nn.Module, input_names: tuple[str, ...]) -> tuple[str, ...]:
    """The graph inputs the model's forward takes (pooling needs the attention mask even for a model that
    does not take one)."""
    params = inspect.signature(model.forward).parameters
    kwargs_only = "input_ids" not in params and any(p.kind is p.VAR_KEYWORD for p in params.values())
    return tuple(n for n in input_names if kwargs_only or n in params)


def block_multiple(config) -> int:
    """The length a model's encoder cuts its sequence into blocks of (1: none): LongT5's local and transient-global
    attention (blocks of local_radius + 1 tokens, global aggregates of global_block_size), PegasusX's block-local
    attention (block_size). Such a model pads a text to a multiple of it with a pad amount computed in Python, which
    the exporter freezes at the traced length: the graph then fails at other lengths. The export pads every text to
    that multiple itself, with computed (traced) operations, so the model's own pad amount is 0 at every length."""
    import math

    kind = getattr(config, "model_type", "")
    if kind == "longt5" and getattr(config, "encoder_attention_type", "local") in ("local", "transient-global"):
        multiple = int(getattr(config, "local_radius", 0) or 0) + 1
        if config.encoder_attention_type == "transient-global":
            # lcm: every text holds at least one global block (transformers branches on there being none)
            multiple = math.lcm(multiple, int(getattr(config, "global_block_size", 1) or 1))
        return multiple
    if kind == "pegasus_x":
        return int(getattr(config, "block_size", 1) or 1)
    if kind in ("longformer", "led"):  # attention windows: the model pads to a multiple of the widest
        window = getattr(config, "attention_window", 1) or 1
        return int(max(window) if isinstance(window, (list, tuple)) else window)
    return 1


def shortest_length(config) -> int:
    """The fewest tokens the model runs on in PyTorch (1: any). Funnel pools the sequence between its blocks (by 2,
    its <cls> kept apart) and fails in transformers on a text too short to pool at every block ("Meh." has 4
    tokens: under 5 with its checkpoints' 3 blocks). The export pads such a text to this length, masked: its answer is
    the one transformers gives it padded to that length (in a batch beside a text of that length)."""
    if getattr(config, "model_type", "") == "funnel":
        blocks = len(getattr(config, "block_sizes", None) or ())
        if blocks >= 2:
            return 2 ** (blocks - 1) + 1 if getattr(config, "separate_cls", True) else 2 ** (blocks - 2) + 1
    return 1


class ExportWrapper(torch.nn.Module):
    """Positional inputs in `input_names` order; returns the task's outputs as a tuple.

    For feature-extraction the sentence-transformers pooling and the modules after it (Dense, LayerNorm,
    Normalize) are part of the graph, so every runtime and the server return finished sentence embeddings.
    """

    def __init__(self, model: torch.nn.Module, task: TaskSpec, input_names: tuple[str, ...], pooling: Pooling | None,
                 pad_left: bool = False, multiple: int = 1, pad_id: int = 0, shortest: int = 1):
        super().__init__()
        self.model = model
        self.task_name = task.name
        self.input_names = tuple(input_names)
        self.pooling = pooling or Pooling()
        self.head = self.pooling.head() if task.name == "feature-extraction" else None
        self.model_input_names = forward_input_names(model, self.input_names)
        # A tokenizer that pads on the left (XLNet) has a model that reads its last position as the end of the
        # text: the graph takes right-padded rows like every other and moves each row's padding to its start.
        self.pad_left = pad_left and "attention_mask" in self.input_names
        # Texts padded to a multiple of the model's block length (see block_multiple), padding hidden by the mask.
        self.multiple = multiple if "attention_mask" in self.model_input_names else 1
        # Texts shorter than the model runs on padded to that length (see shortest_length), masked.
        self.shortest = shortest if "attention_mask" in self.model_input_names else 1
        self.pad_id = pad_id
        self.per_token = [1 in task.output_axes(name) for name in task.output_names]

    def _to_multiple(self, kwargs: dict) -> tuple[dict, torch.Tensor]:
        """The inputs right-padded to the next multiple of `self.multiple`, and to at least `self.shortest` tokens
        (the pad id, mask and segment 0), and the positions of the real length, to cut per-token outputs back. Every
        size here is computed from the input's shape by traced operations: the graph pads each length by its own
        amount."""
        ids = kwargs["input_ids"]
        length = ids.shape[1]
        padded = (length + self.multiple - 1) // self.multiple * self.multiple
        if self.shortest > 1:
            padded = torch.clamp(torch.as_tensor(padded, device=ids.device), min=self.shortest)
        index = torch.arange(padded, device=ids.device)
        real = (index < length).unsqueeze(0)
        source = torch.remainder(index, length).unsqueeze(0).expand(ids.shape[0], -1)
        out = {}
        for name, tensor in kwargs.items():
            fill = self.pad_id if name == "input_ids" else 0
            out[name] = torch.where(real, tensor.gather(1, source), torch.full_like(tensor[:, :1], fill))
        return out, torch.arange(length, device=ids.device)

    def forward(self, *inputs: torch.Tensor):
        kwargs = dict(zip(self.input_names, inputs))
        if self.multiple > 1 or self.shortest > 1:
            kwargs, keep = self._to_multiple(kwargs)
            outputs = self._forward(kwargs)
            return tuple(o.index_select(1, keep) if per_token else o for o, per_token in zip(outputs, self.per_token))
        return self._forward(kwargs)

    def _forward(self, kwargs: dict):
        model_kwargs = {n: kwargs[n] for n in self.model_input_names}
        if self.pad_left:
            mask = kwargs["attention_mask"]
            positions = torch.arange(mask.shape[1], device=mask.device).unsqueeze(0)
            shift = mask.shape[1] - mask.sum(dim=1, keepdim=True)  # each row's padding
            to_left = torch.remainder(positions - shift, mask.shape[1])
            to_right = torch.remainder(positions + shift, mask.shape[1])
            model_kwargs = {n: t.gather(1, to_left) for n, t in model_kwargs.items()}
        out = self.model(**model_kwargs, return_dict=True)
        if self.task_name == "question-answering":
            if self.pad_left:
                return out.start_logits.gather(1, to_right), out.end_logits.gather(1, to_right)
            return out.start_logits, out.end_logits
        if self.task_name == "token-classification" and self.pad_left:
            return (out.logits.gather(1, to_right.unsqueeze(-1).expand_as(out.logits)),)
        if self.task_name != "feature-extraction":
            return (out.logits,)
        if getattr(out, "last_hidden_state", None) is None and getattr(out, "pooler_output", None) is not None:
            # A model that gives its own sentence vector and no token states (DPR's question and context encoders:
            # their [CLS] state, projected): the vector is the only "token" pooled, whatever the pooling mode.
            pooled = out.pooler_output.unsqueeze(1)
            return (self.head(pooled, torch.ones(pooled.shape[:2], dtype=kwargs["attention_mask"].dtype,
                                                 device=pooled.device)),)
        if self.pad_left:
            hidden = out.last_hidden_state
            return (self.head(hidden.gather(1, to_right.unsqueeze(-1).expand_as(hidden)), kwargs["attention_mask"]),)
        return (self.head(out.last_hidden_state, kwargs["attention_mask"]),)


def export_wrapper(source: SourceModel, task: TaskSpec) -> ExportWrapper:
    pad_left = getattr(source.tokenizer, "padding_side", "right") == "left"
    return ExportWrapper(source.model, task, source.input_names, source.pooling, pad_left,
                         block_multiple(source.config), source.pad_id, shortest_length(source.config)).eval()


def dummy_inputs(input_names: tuple[str, ...], batch: int = 2, sequence: int = 8,
                 vocab_size: int | None = None) -> tuple[torch.Tensor, ...]:
    high = min(100, vocab_size) if vocab_size else 100
    ids = torch.randint(min(5, high - 1), high, (batch, sequence), dtype=torch.int64)
    values = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}
    return tuple(values[n] for n in input_names)


def _tokenized(source: SourceModel, texts: list[str], pairs: list[str] | None, length: int,
               padding: str) -> tuple[torch.Tensor, ...] | None:
    try:
        # Right-padded, as the encoder gives them (the graph moves padding itself for left-padding models).
        encoded = source.tokenizer(texts, pairs, padding=padding, truncation=True, max_length=length,
                                   return_tensors="pt", padding_side="right")
    except Exception:  # noqa: BLE001 - any tokenizer trouble: the caller falls back to random ids
        return None
    ids = encoded["input_ids"].to(torch.int64)
    values = {"input_ids": ids, "attention_mask": encoded.get("attention_mask", torch.ones_like(ids)),
              "token_type_ids": encoded.get("token_type_ids", torch.zeros_like(ids))}
    return tuple(values[n].to(torch.int64) for n in source.input_names)


def trace_inputs(source: SourceModel, task: TaskSpec, batch: int = 2, sequence: int = 8) -> tuple[torch.Tensor, ...]:
    """Real text (question and context for QA) tokenized to `batch` x `sequence`: models that look at their
    token ids while tracing (Longformer finds the question by its separator tokens) see what they will get.
    Random ids when the tokenizer cannot give them."""
    from inferforge.verify import builtin_texts

    texts, pairs = builtin_texts(task)
    inputs = _tokenized(source, texts[:batch], pairs[:batch] if pairs else None, sequence, "max_length")
    if inputs is not None and all(t.shape == (batch, sequence) for t in inputs):
        return tuple(torch.ones_like(t) if n == "attention_mask" else t for n, t in zip(source.input_names, inputs))
    return dummy_inputs(source.input_names, batch, sequence, getattr(source.config, "vocab_size", None))


def probe_inputs(source: SourceModel, task: TaskSpec, length: int) -> tuple[torch.Tensor, ...]:
    """Two real texts at a shape other than the traced one: one of up to `length` tokens, one shorter and
    padded, as verification and serving will send them (random ids if the tokenizer cannot give them)."""
    from inferforge.verify import builtin_texts

    texts, pairs = builtin_texts(task)
    if pairs:
        rows, second = [texts[0], texts[1]], [" ".join(pairs), pairs[1]]
    else:
        rows, second = [" ".join(texts), texts[1]], None
    inputs = _tokenized(source, rows, second, length, "longest")
    if inputs is not None and inputs[0].shape[1] > 8 and "attention_mask" in source.input_names:
        mask = inputs[source.input_names.index("attention_mask")]
        if not mask[1].all():
            return inputs
        # Both texts fill the length: the second cut shorter on its own and padded, its special tokens kept (a model
        # that finds the question by its separators, as Longformer's question answering does, reads real pairs only).
        shorter = _tokenized(source, rows[1:], second[1:] if second else None, max(2, length - length // 3), "longest")
        if shorter is not None and shorter[0].shape[1] < inputs[0].shape[1]:
            fill = {"input_ids": source.pad_id}
            padded = [torch.nn.functional.pad(t, (0, inputs[0].shape[1] - t.shape[1]), value=fill.get(n, 0))
                      for n, t in zip(source.input_names, shorter)]
            return tuple(torch.cat([full[:1], part]) for full, part in zip(inputs, padded))
    inputs = dict(zip(source.input_names, dummy_inputs(source.input_names, 2, length,
                                                       getattr(source.config, "vocab_size", None))))
    short = max(1, length - max(1, length // 3))
    if "attention_mask" in inputs:
        inputs["attention_mask"][1, short:] = 0
    inputs["input_ids"][1, short:] = source.pad_id
    return tuple(inputs[n] for n in source.input_names)


def _unsupported_operator(error: Exception) -> str | None:
    match = re.search(r"operator '?([\w:.]+)'?", str(error))
    return match.group(1) if match else None


@contextmanager
def eager_attention(model: torch.nn.Module):
    """Export the attention as its plain ops (MatMul, Add mask, Softmax, MatMul) rather than as traced
    `scaled_dot_product_attention`: the runtimes recognise that pattern and fuse it, and the SDPA trace
    adds IsNaN/Where guards they do not. Measured on all-MiniLM-L6-v2, same weights, interleaved, 2
    threads (bench/experiments/FINDINGS.md): OpenVINO bf16 1.07x/1.10x/1.12x faster at 1x16/1x128/32x128,
    onnxruntime fp32 1.06x/1.14x faster at 1x128/32x128. The PyTorch reference keeps its own attention."""
    previous = getattr(model.config, "_attn_implementation", None)
    switched = False
    if previous not in (None, "eager") and hasattr(model, "set_attn_implementation"):
        try:
            model.set_attn_implementation("eager")
            switched = True
        except (ValueError, AttributeError, NotImplementedError):  # a model that only has its own attention
            switched = False
    try:
        yield
    finally:
        if switched:
            model.set_attn_implementation(previous)


def _dft_tables(positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of 2 pi j k / n for j, k < n = len(positions): the discrete Fourier matrix's two parts.
    j k is reduced modulo n in integers first, so the angle stays exact at any length; n is read from the
    positions tensor, so a trace keeps it dynamic."""
    count = positions[-1:] + 1
    angle = torch.remainder(positions[:, None] * positions[None, :], count) * (2 * torch.pi) / count
    return torch.cos(angle).to(dtype), torch.sin(angle).to(dtype)


def real_fourier_2d(hidden: torch.Tensor) -> torch.Tensor:
    """The real part of the 2-D discrete Fourier transform over (sequence, hidden), FNet's token mixing, as
    matrix products: Re(F_s X F_h) = C_s X C_h - S_s X S_h for a real X. torch.fft has no ONNX export;
    matrix products export at any length and run on every runtime's fastest kernels."""
    cos_s, sin_s = _dft_tables(torch.arange(hidden.shape[1], device=hidden.device), hidden.dtype)
    cos_h, sin_h = _dft_tables(torch.arange(hidden.shape[2], device=hidden.device), hidden.dtype)
    return torch.matmul(torch.matmul(cos_s, hidden), cos_h) - torch.matmul(torch.matmul(sin_s, hidden), sin_h)


@contextmanager
def _swapped_methods(model: torch.nn.Module, class_names: tuple[str, ...], attribute: str, make):
    """While the block runs, every module of `model` whose class is named in `class_names` has its method `attribute`
    replaced by `make(module)` (an instance attribute); the class's own method again afterwards."""
    swapped = [m for m in model.modules() if type(m).__name__ in class_names]
    for module in swapped:
        setattr(module, attribute, make(module))
    try:
        yield
    finally:
        for module in swapped:
            delattr(module, attribute)


def traceable_fourier(model: torch.nn.Module):
    """FNet's Fourier layers (forward: `(fourier_transform(hidden).real,)`) computed by `real_fourier_2d`
    while exporting; the PyTorch reference keeps torch.fft."""
    return _swapped_methods(model, ("FNetBasicFourierTransform",), "forward",
                            lambda module: lambda hidden_states: (real_fourier_2d(hidden_states),))


WINDOWED_ATTENTION_CLASSES = ("LongformerSelfAttention", "LEDEncoderSelfAttention")


def windowed_attention(self, hidden_states, attention_mask=None, is_index_masked=None, is_index_global_attn=None,
                       is_global_attn=None, output_attentions=False):
    """Longformer's self-attention (LED's encoder's too) with every size computed from the input by traced
    operations: each token attends to the `w` tokens on either side of it that are neither padding nor global, and
    to every global token; a global token attends to every token that is not padding, through its own projections.

    transformers computes the same numbers with strided views (`as_strided` with strides of the traced length) and
    gathers the global tokens into a tensor whose size is the batch's largest global-token count, both read as
    Python numbers while tracing: the graph then fails at other lengths and gives other numbers at the traced one.
    Here the sequence is read in chunks of `w` queries, each against the 3 `w` keys around it (reshapes and slices of
    the key and value tensors padded by `w` on both sides: memory linear in the length, as the model's own), and the
    global tokens are picked by a one-hot matrix of their rank (at least one slot, empty slots masked). The sequence
    is a multiple of the attention window (the model pads to it; the export pads to it first, see block_multiple)."""
    import math

    batch, length, embed = hidden_states.shape
    heads, head_dim, w = self.num_heads, self.head_dim, self.one_sided_attn_window_size
    lowest = torch.finfo(hidden_states.dtype).min

    def per_head(x):  # (batch, length, embed) -> (batch, heads, length, head_dim)
        return x.reshape(batch, length, heads, head_dim).transpose(1, 2)

    def windows(x):  # (..., length, d) -> (..., chunks, 3 w, d): for chunk c the positions c w - w .. c w + 2 w - 1
        padded = torch.nn.functional.pad(x, (0, 0, w, w))
        blocks = padded.reshape(*padded.shape[:-2], -1, w, padded.shape[-1])
        return torch.cat([blocks[..., :-2, :, :], blocks[..., 1:-1, :, :], blocks[..., 2:, :, :]], dim=-2)

    query = per_head(self.query(hidden_states) / math.sqrt(head_dim))
    key, value = per_head(self.key(hidden_states)), per_head(self.value(hidden_states))
    chunked_query = query.reshape(batch, heads, -1, w, head_dim)  # (batch, heads, chunks, w, head_dim)
    local_scores = torch.matmul(chunked_query, windows(key).transpose(-1, -2))  # (batch, heads, chunks, w, 3 w)
    # Keys a token reads in its window: real, not global (global keys are read as such), within w of it.
    local_key = windows((attention_mask == 0).unsqueeze(-1).to(hidden_states.dtype))[..., 0] > 0.5  # (b, chunks, 3w)
    device = hidden_states.device
    offsets = torch.arange(3 * w, device=device)[None, :] - torch.arange(w, device=device)[:, None]
    in_band = (offsets >= 0) & (offsets <= 2 * w)  # key position - query position in [-w, w]
    allowed = local_key[:, None, :, None, :] & in_band
    local_scores = local_scores.masked_fill(~allowed, lowest)

    is_global = is_index_global_attn
    counts = is_global.sum(dim=1)
    slots = torch.arange(torch.clamp(counts.max(), min=1), device=device)  # at least one slot
    rank = torch.cumsum(is_global.to(torch.int64), dim=1) - 1
    pick = ((rank[:, None, :] == slots[None, :, None]) & is_global[:, None, :]).to(hidden_states.dtype)  # (b, G, L)
    slot_used = slots[None, :] < counts[:, None]  # (batch, G)
    global_key = torch.matmul(pick[:, None], key)  # (batch, heads, G, head_dim)
    global_value = torch.matmul(pick[:, None], value)
    global_scores = torch.matmul(chunked_query, global_key[:, :, None].transpose(-1, -2))  # (b, h, chunks, w, G)
    global_scores = global_scores.masked_fill(~slot_used[:, None, None, None, :], lowest)

    probs = torch.softmax(torch.cat([global_scores, local_scores], dim=-1), dim=-1, dtype=torch.float32)
    probs = probs.to(hidden_states.dtype)
    probs = probs.masked_fill(is_index_masked.reshape(batch, 1, -1, w, 1), 0.0)
    local_out = torch.matmul(probs[..., -3 * w:], windows(value))  # (batch, heads, chunks, w, head_dim)
    global_out = torch.matmul(probs[..., : -3 * w], global_value[:, :, None])
    out = (local_out + global_out).reshape(batch, heads, length, head_dim).transpose(1, 2).reshape(batch, length, embed)

    # Global tokens attend to every real token, with the global projections.
    global_hidden = torch.matmul(pick, hidden_states)  # (batch, G, embed)
    global_query = self.query_global(global_hidden) / math.sqrt(head_dim)
    global_query = global_query.reshape(batch, -1, heads, head_dim).transpose(1, 2)  # (batch, heads, G, head_dim)
    all_key, all_value = per_head(self.key_global(hidden_states)), per_head(self.value_global(hidden_states))
    scores = torch.matmul(global_query, all_key.transpose(-1, -2))
    scores = scores.masked_fill(is_index_masked[:, None, None, :], lowest)
    attended = torch.matmul(torch.softmax(scores, dim=-1, dtype=torch.float32).to(hidden_states.dtype), all_value)
    attended = attended.transpose(1, 2).reshape(batch, -1, embed)  # (batch, G, embed)
    out = torch.where(is_global[:, :, None], torch.matmul(pick.transpose(1, 2), attended), out)
    return (out,)


def traceable_windows(model: torch.nn.Module):
    """Longformer's and LED's windowed self-attention computed by `windowed_attention` while exporting; the PyTorch
    reference keeps transformers' own."""
    return _swapped_methods(model, WINDOWED_ATTENTION_CLASSES, "forward", windowed_attention.__get__)


def funnel_position_embeds(structure, ones: torch.Tensor, dtype: torch.dtype):
    """FunnelAttentionStructure.get_position_embeds with every position a tensor: transformers lists the positions
    of each block as Python numbers, which the exporter freezes at the traced length (the graph then fails at any
    other). `ones`: a tensor of the sequence's length. The same numbers, for both attention types."""
    config, device = structure.config, ones.device
    d_model = config.d_model
    pos = torch.cumsum(ones.to(torch.int64), 0) - 1
    freq_seq = torch.arange(0, d_model // 2, 1.0, dtype=torch.int64, device=device).to(dtype)
    inv_freq = 1 / (10000 ** (freq_seq / (d_model // 2)))
    if config.attention_type == "factorized":
        sinusoid = pos.to(dtype)[:, None] * inv_freq[None]
        sin_embed, cos_embed = torch.sin(sinusoid), torch.cos(sinusoid)
        return (torch.cat([sin_embed, sin_embed], dim=-1), torch.cat([cos_embed, cos_embed], dim=-1),
                torch.cat([cos_embed, sin_embed], dim=-1), torch.cat([-sin_embed, cos_embed], dim=-1))
    length = pos[-1] + 1
    zero_offset = 2 * length
    sinusoid = torch.arange(-zero_offset, zero_offset, dtype=torch.int64, device=device).to(dtype)[:, None] * inv_freq
    pos_embed = torch.cat([torch.sin(sinusoid), torch.cos(sinusoid)], dim=-1)

    def relative(pos, stride, pooled=None, shift=1):  # FunnelAttentionStructure.relative_pos
        pooled = pos if pooled is None else pooled
        max_dist = pooled[0] - pos[0] + shift * torch.ones_like(pooled).sum() * stride
        rel = torch.arange(max_dist, pooled[0] - pos[-1] - 1, -stride, dtype=torch.long, device=device)
        return torch.gather(pos_embed, 0, (rel[:, None] + zero_offset).expand(-1, d_model))

    def pooled_positions(pos, block_index):  # FunnelAttentionStructure.stride_pool_pos
        if not config.separate_cls:
            return pos[::2]
        rest = pos[1:-1] if config.truncate_seq else pos[1:]
        return torch.cat([pos[:1] * 0 + 1 - 2 ** block_index, rest[::2]])

    embeds = []
    for block_index in range(config.num_blocks):
        pooling = None
        if block_index > 0:
            pooled = pooled_positions(pos, block_index)
            pooling = relative(pos, 2 ** (block_index - 1), pooled, shift=2)
            pos = pooled
        embeds.append([relative(pos, 2 ** block_index), pooling])
    return embeds


def funnel_attention_inputs(self, inputs_embeds, attention_mask=None, token_type_ids=None):
    """FunnelAttentionStructure.init_attention_inputs with the positions and the <cls> mask computed from the input
    by traced operations (see funnel_position_embeds)."""
    self.pooling_mult = 1
    self.seq_len = inputs_embeds.size(1)
    ones = torch.ones_like(inputs_embeds[0, :, 0], dtype=torch.int64)
    position_embeds = funnel_position_embeds(self, ones, inputs_embeds.dtype)
    token_type_mat = self.token_type_ids_to_mat(token_type_ids) if token_type_ids is not None else None
    cls_mask = None
    if self.config.separate_cls:  # 0 on the first row and column, 1 elsewhere
        rest = torch.cumsum(ones, 0) > 1
        cls_mask = (rest[:, None] & rest[None, :]).to(inputs_embeds.dtype)
    return (position_embeds, token_type_mat, attention_mask, cls_mask)


def traceable_funnel(model: torch.nn.Module):
    """Funnel's attention inputs computed by `funnel_attention_inputs` while exporting; the PyTorch reference keeps
    transformers' own."""
    return _swapped_methods(model, ("FunnelAttentionStructure",), "init_attention_inputs",
                            funnel_attention_inputs.__get__)


@contextmanager
def non_negative_repeat_dims():
    """`repeat_interleave` along a negative dim given as the same dim counted from the front while exporting. The
    TorchScript exporter records the result of a negative dim with the wrong shape, and a later `transpose(-1, -2)`
    is then written with the wrong permutation: CANINE's graph failed on every input, its traced one too."""
    function, method = torch.repeat_interleave, torch.Tensor.repeat_interleave

    def counted_from_front(original):
        def repeat_interleave(tensor, *args, **kwargs):
            if len(args) > 1 and isinstance(args[1], int) and args[1] < 0:
                args = (args[0], args[1] + tensor.dim(), *args[2:])
            if isinstance(kwargs.get("dim"), int) and kwargs["dim"] < 0:
                kwargs["dim"] += tensor.dim()
            return original(tensor, *args, **kwargs)
        return repeat_interleave

    torch.repeat_interleave, torch.Tensor.repeat_interleave = counted_from_front(function), counted_from_front(method)
    try:
        yield
    finally:
        torch.repeat_interleave, torch.Tensor.repeat_interleave = function, method


@contextmanager
def traceable_masks():
    """transformers' attention masks as the exporter can trace them. They are built by broadcasting index tensors,
    never by torch.vmap (which transformers uses as soon as a model combines mask functions: T5Gemma 2's
    sliding-window encoder layers, for one), since the TorchScript exporter cannot trace vmap ("unordered_map::at");
    transformers' mask functions are index-based (comparisons and a lookup in the padding mask), so broadcasting gives
    the same mask, as optimum exports them. And no search for packed sequences (see below)."""
    try:
        from transformers import masking_utils
    except ImportError:  # an older transformers without mask functions: nothing to patch
        yield
        return
    broadcast = getattr(masking_utils, "_non_vmap_expansion_sdpa", None)
    if broadcast is None:
        yield
        return

    def expansion(mask_function):
        def mask(batch, head, query, key):
            return mask_function(*broadcast(batch, head, query, key)).expand(
                batch.shape[0], head.shape[0], query.shape[0], key.shape[0])
        return mask

    # The indexing mode vmap needs turns a lookup into a custom autograd Function the exporter cannot trace either.
    # And a graph's rows are never several texts packed together (one text per row, positions from 0), while under
    # a trace transformers looks for packed sequences every time (with torch.diff, which has no ONNX export).
    patches = {"_vmap_expansion_sdpa": expansion, "TransformGetItemToIndex": nullcontext,
               "find_packed_sequence_indices": lambda position_ids: None}
    saved = {name: getattr(masking_utils, name) for name in patches if hasattr(masking_utils, name)}
    for name in saved:
        setattr(masking_utils, name, patches[name])
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(masking_utils, name, value)


def _torch_export(wrapper: ExportWrapper, source: SourceModel, task: TaskSpec, path: Path, opset: int) -> None:
    names = source.input_names
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes.update({n: task.output_axes(n) for n in task.output_names})
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad(), eager_attention(source.model), \
            traceable_fourier(source.model), traceable_windows(source.model), traceable_funnel(source.model), \
            non_negative_repeat_dims(), traceable_masks():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            trace_inputs(source, task),
            str(path),
            input_names=list(names),
            output_names=list(task.output_names),
            dynamic_axes=axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )


def export_onnx(source: SourceModel, task: TaskSpec, path: Path) -> Path:
    """Export with dynamic batch and sequence axes; weights over 2 GB go to external data.

    The graph uses opset OPSET; an operator that only a newer opset expresses gets one more try at
    MAX_OPSET before the architecture is declared unexportable, naming the operator."""
    wrapper = export_wrapper(source, task)
    path.parent.mkdir(parents=True, exist_ok=True)
    opset = OPSET
    while True:
        try:
            _torch_export(wrapper, source, task, path, opset)
            break
        except Exception as error:  # noqa: BLE001 - any exporter failure is the architecture's, said in one sentence
            op = _unsupported_operator(error)
            if op and opset < MAX_OPSET:
                opset = MAX_OPSET
                continue
            arch = type(source.model).__name__
            functions = [] if op else custom_autograd_functions(wrapper, source, task)
            if functions:
                raise UserError(f"{arch} cannot be exported to ONNX: it runs Python code the exporter cannot trace "
                                f"(custom torch.autograd.Function {', '.join(functions)}).") from None
            detail = (f"operator {op} is not supported at ONNX opset {opset}" if op
                      else f"tracing it on 2 texts of 8 tokens fails ({first_line(error)})")
            raise UserError(f"{arch} cannot be exported to ONNX: {detail}.") from None
    resave_onnx(path)
    check_dynamic_shapes(wrapper, source, task, path)
    return path


def custom_autograd_functions(wrapper: ExportWrapper, source: SourceModel, task: TaskSpec) -> list[str]:
    """The torch.autograd.Function subclasses of the model's own code that a forward runs (Reformer's reversible
    layers and sorts): Python the TorchScript exporter cannot trace, whose failure says nothing ("unordered_map::at")."""
    seen: list[str] = []
    original = vars(torch.autograd.Function).get("apply")
    if not isinstance(original, classmethod):
        return seen

    def spy(cls, *args, **kwargs):
        if not cls.__module__.startswith("torch.") and cls.__name__ not in seen:
            seen.append(cls.__name__)
        return original.__func__(cls, *args, **kwargs)

    torch.autograd.Function.apply = classmethod(spy)
    try:
        with torch.inference_mode(False), torch.no_grad():
            wrapper(*trace_inputs(source, task))
    except Exception:  # noqa: BLE001 - the model fails in PyTorch too: the caller reports the trace error
        pass
    finally:
        torch.autograd.Function.apply = original
    return seen


PROBE_LENGTH = 77  # longer than the traced 8 tokens, odd, and short enough to cost nothing on any model


def check_tokens_mix(source: SourceModel, inputs: tuple[torch.Tensor, ...]) -> None:
    """An encoder's token states depend on the other tokens. One whose do not (MRA's attention, for one, is a CUDA
    kernel and returns zeros without it) would give numbers that mean nothing, in PyTorch and in every runtime."""
    kwargs = {name: tensor[:1] for name, tensor in zip(source.input_names, inputs)}  # the unpadded row
    model_kwargs = {n: kwargs[n] for n in forward_input_names(source.model, source.input_names)}
    changed = dict(model_kwargs)
    ids = changed["input_ids"] = model_kwargs["input_ids"].clone()
    middle = ids.shape[1] // 4
    vocab = getattr(source.config, "vocab_size", None) or 100
    ids[0, middle] = ids[0, middle] + 1 if int(ids[0, middle]) + 1 < vocab else ids[0, middle] - 1
    try:
        with torch.inference_mode(False), torch.no_grad():
            states = [source.model(**k, output_hidden_states=True, return_dict=True).hidden_states for k in
                      (model_kwargs, changed)]
    except Exception:  # noqa: BLE001 - no hidden states to look at: nothing to judge
        return
    if not states[0] or not states[1] or not isinstance(states[0][-1], torch.Tensor):
        return
    before, after = states[0][-1][0], states[1][-1][0]
    if before.shape != after.shape or before.shape[0] != ids.shape[1]:
        return  # pooled or shortened sequences (Funnel): positions do not line up
    others = torch.ones(ids.shape[1], dtype=torch.bool)
    others[middle] = False
    if "attention_mask" in kwargs:
        others &= kwargs["attention_mask"][0].bool()
    if torch.equal(before[others], after[others]):
        raise UserError(f"{type(source.model).__name__} cannot be served on this machine: in PyTorch here its "
                        "tokens do not see each other (its attention gives nothing, as a GPU-only kernel does "
                        "without a GPU), so its outputs would mean nothing.")


def reads_padding(source: SourceModel, task: TaskSpec) -> bool:
    """Whether padding changes a text's answers: a model that takes no attention mask (FNet), or one whose layers
    mix the padded positions in despite its mask (SAM 3's lite text encoder: convolutions along the sequence). Such
    a model's texts are run at their own length, unpadded (each gets the answer transformers gives it alone)."""
    if "attention_mask" not in model_input_names(source.model, source.config, source.tokenizer):
        return True
    from inferforge.verify import builtin_texts

    texts, pairs = builtin_texts(task)
    short = min(texts, key=len)
    rows, second = [short, " ".join(texts)], ([pairs[0], " ".join(pairs)] if pairs else None)
    padded = _tokenized(source, rows, second, min(source.max_length, 48), "longest")
    if padded is None:
        return False
    mask = padded[source.input_names.index("attention_mask")][0].bool()
    if mask.all():
        return False
    wrapper = export_wrapper(source, task)
    alone = tuple(t[:1, : int(mask.sum())] for t in padded)
    try:
        with torch.inference_mode(False), torch.no_grad():
            with_padding = [t[:1] for t in wrapper(*padded)]
            without = list(wrapper(*alone))
    except Exception:  # noqa: BLE001 - the export's own checks say why the model fails
        return False
    for name, have, want in zip(task.output_names, with_padding, without):
        if 1 in task.output_axes(name):  # per-token outputs: the real tokens only
            have = have[:, : want.shape[1]]
        if have.shape != want.shape:
            return True
        if float((have - want).abs().max()) / max(1.0, float(want.abs().max())) > 1e-4:
            return True
    return False


def traced_shape_probes(source: SourceModel, task: TaskSpec, batch: int = 2,
                        sequence: int = 8) -> list[tuple[torch.Tensor, ...]]:
    """Other tokens at the very shape traced: real texts other than the traced ones (random ids without a
    tokenizer). A graph that fails or differs on them followed the traced token values, whatever it does at
    other shapes."""
    from inferforge.verify import builtin_texts

    texts, pairs = builtin_texts(task)
    probes = []
    for start in (batch, 2 * batch + 1, 3 * batch + 3):
        rows = [texts[(start + k) % len(texts)] for k in range(batch)]
        second = [pairs[(start + k) % len(pairs)] for k in range(batch)] if pairs else None
        inputs = _tokenized(source, rows, second, sequence, "max_length")
        if inputs is not None and all(t.shape == (batch, sequence) for t in inputs):
            probes.append(inputs)  # with their own attention mask: a short text is padded, as served
    if probes:
        return probes
    generator_state = torch.random.get_rng_state()
    try:  # no tokenizer: random ids, seeded so that a refusal repeats
        torch.manual_seed(20261130)
        return [dummy_inputs(source.input_names, batch, sequence, getattr(source.config, "vocab_size", None))
                for _ in range(3)]
    finally:
        torch.random.set_rng_state(generator_state)


def value_probes(source: SourceModel, task: TaskSpec, length: int) -> list[tuple[torch.Tensor, ...]]:
    """Other real texts than the first probe's: pairs at `length` tokens and single texts cut to a few tokens.
    A graph whose computation followed the traced token values (a mixture of experts routed by a Python
    loop over the experts the traced tokens hit) fails or differs on some of them, most often on few tokens."""
    from inferforge.verify import builtin_texts

    texts, pairs = builtin_texts(task)
    probes = []
    for i, cut in enumerate((length, length, 3, 5, 9)):
        rows = [texts[(2 * i + 2) % len(texts)], texts[(2 * i + 3) % len(texts)]][:2 if cut == length else 1]
        second = [pairs[(2 * i + 2 + k) % len(pairs)] for k in range(len(rows))] if pairs else None
        inputs = _tokenized(source, rows, second, max(2, min(cut, source.max_length)), "longest")
        if inputs is not None:
            probes.append(inputs)
    return probes


def check_dynamic_shapes(wrapper: ExportWrapper, source: SourceModel, task: TaskSpec, path: Path) -> None:
    """The traced graph must hold at other shapes and other tokens: models that turn the sequence length into
    Python numbers while tracing (padding to an attention window, pooling blocks, fixed landmark counts) give a
    graph that only runs at the traced 2 x 8, or gives other numbers; models that turn token values into Python
    control flow (experts routed by a loop) give one that holds for the traced tokens only. ONNX Runtime runs
    on other texts at the traced shape first (a failure there is the tokens', whatever the shapes do), then at
    another batch and length (one row padded), then on other texts, long and short, against PyTorch: a graph
    that fails one is refused in one sentence."""
    import numpy as np
    import onnxruntime as ort

    length = max(2, min(PROBE_LENGTH, source.max_length))
    inputs = probe_inputs(source, task, length)
    length = inputs[0].shape[1]
    arch = type(source.model).__name__
    check_tokens_mix(source, inputs)
    where = "the graph traced on 2 texts of 8 tokens"
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 4
    session = None
    same_shape = traced_shape_probes(source, task)
    probes = [*same_shape, inputs, *value_probes(source, task, length)]
    for index, probe in enumerate(probes):
        rows, tokens = probe[0].shape
        shape_probe = index == len(same_shape)  # other tokens at the traced shape first: a failure there is theirs
        other = " other" if index < len(same_shape) else ""
        seen = f"on {rows}{other} text{'s' if rows > 1 else ''} of {tokens} tokens"
        why = "with a dynamic batch and sequence length" if shape_probe else \
            "faithfully (its graph follows the tokens and padding seen while tracing: Python code that " \
            "branches on them, such as expert routing or windowed attention, is frozen at the traced input)"
        try:
            with torch.inference_mode(False), torch.no_grad():
                expected = [t.float().numpy() for t in wrapper(*probe)]
        except Exception as error:  # noqa: BLE001 - PyTorch itself fails on real text: nothing can be verified
            raise UserError(f"{arch} fails in PyTorch {seen} ({first_line(error, 200)}).") from None
        try:
            if session is None:
                session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            feed = {n: t.numpy() for n, t in zip(source.input_names, probe)}
            taken = {i.name for i in session.get_inputs()}  # the exporter drops inputs the graph never reads
            got = session.run(list(task.output_names), {n: v for n, v in feed.items() if n in taken})
        except Exception as error:  # noqa: BLE001 - the graph fixed a shape (or a routing) of the trace
            raise UserError(f"{arch} cannot be exported to ONNX {why}: {where} fails {seen} "
                            f"({first_line(error, 200)}).") from None
        mask = probe[source.input_names.index("attention_mask")].numpy().astype(bool) \
            if "attention_mask" in source.input_names else np.ones(probe[0].shape, dtype=bool)
        for name, want, have in zip(task.output_names, expected, got):
            if want.shape != have.shape:
                diff = float("inf")
            else:
                if 1 in task.output_axes(name):  # per-token outputs: padding positions mean nothing
                    want, have = want[mask], have[mask]
                diff = float(np.abs(want - have).max()) / max(1.0, float(np.abs(want).max()))
            if not diff <= 1e-3:
                raise UserError(f"{arch} cannot be exported to ONNX {why}: {where} gives other {name} than "
                                f"PyTorch {seen}.")


def resave_onnx(path: Path, external_threshold: int = TWO_GB) -> None:
    """Rewrite the file cleanly: stale value_info dropped (it breaks quantization), external data when large."""
    model = onnx.load(str(path), load_external_data=True)
    del model.graph.value_info[:]
    size = sum(t.ByteSize() for t in model.graph.initializer)
    for stale in path.parent.glob(path.name + "*"):
        if stale != path:
            stale.unlink()
    if size > external_threshold:
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=path.name + EXTERNAL_DATA_SUFFIX, size_threshold=1024)
    else:
        onnx.save_model(model, str(path))


def check_external_data(path: Path) -> None:
    """Refuse ONNX files whose external data is absolute, climbs with '..' or resolves outside their folder."""
    model = onnx.load(str(path), load_external_data=False)
    folder = path.parent.resolve()
    for tensor in model.graph.initializer:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        target = (folder / location).resolve()
        if Path(location).is_absolute() or ".." in Path(location).parts or not target.is_relative_to(folder):
            raise UserError(
                f"{path.name} refers to external data '{location}' outside its folder; refusing to load it."
            )
