"""Loading the user's model: a hub id or a local Hugging Face directory (sentence-transformers too)."""

from __future__ import annotations

import inspect
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from inferforge.errors import UserError, first_line
from inferforge.sentence_embedding import (Pooling, TransformerSettings, check_task_modules, cross_encoder_activation,
                                           lowercase_first, module_files, pair_prompt, read_pooling,
                                           transformer_settings)
from inferforge.tasks import TaskSpec

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
INPUT_ORDER = ("input_ids", "attention_mask", "token_type_ids")


@dataclass
class SourceModel:
    """A loaded Hugging Face model with what the pipeline derives from it."""

    name: str
    model: object
    tokenizer: object
    config: object
    input_names: tuple[str, ...]
    max_length: int
    labels: list[str] | None
    pooling: Pooling | None
    pad_id: int = 0
    prompt: str = ""  # put before every (first) text: a sentence-transformers model's default prompt
    warnings: list[str] = field(default_factory=list)  # what the user should know about the checkpoint


def _quiet_transformers() -> None:
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def _sentence_transformers_max_length(directory: Path) -> int | None:
    return transformer_settings(directory).max_length


def model_input_names(model, config, tokenizer=None) -> tuple[str, ...]:
    """The inputs the model really takes, in INPUT_ORDER.

    token_type_ids only when the model has more than one segment type and the tokenizer hands them to the
    model (a tokenizer whose `model_input_names` leaves them out gets the model's all-zero default from
    transformers, so the graph must not take the tokenizer's segment ids either).
    """
    params = inspect.signature(model.forward).parameters
    if "input_ids" not in params and any(p.kind is p.VAR_KEYWORD for p in params.values()):
        # A forward(**kwargs) (remote code): trust what the tokenizer says the model takes.
        declared = set(getattr(tokenizer, "model_input_names", None) or ("input_ids", "attention_mask"))
        return tuple(n for n in INPUT_ORDER if n in declared)
    names = [n for n in ("input_ids", "attention_mask") if n in params]
    tokenizer_types = tokenizer is None or "token_type_ids" in (getattr(tokenizer, "model_input_names", None)
                                                                or ("token_type_ids",))
    if "token_type_ids" in params and tokenizer_types:
        kinds = getattr(config, "type_vocab_size", None)
        if (kinds or 0) > 1 or (kinds is None and tokenizer is not None and reads_segments(model, tokenizer)):
            names.append("token_type_ids")
    return tuple(names)


def reads_segments(model, tokenizer) -> bool:
    """Whether a model without a segment-embedding table (no `type_vocab_size`: XLNet's relative segment encoding,
    Funnel's segment attention) changes its output with the segment ids its tokenizer gives a text pair."""
    import torch

    try:
        pair = tokenizer("a b", "c d", return_tensors="pt")
        types = pair.get("token_type_ids")
        if types is None or not bool((types != 0).any()):
            return False
        params = inspect.signature(model.forward).parameters
        kwargs = {name: pair[name] for name in ("input_ids", "attention_mask") if name in params and name in pair}
        with torch.inference_mode(False), torch.no_grad():
            outputs = [model(**kwargs, token_type_ids=t, return_dict=True) for t in (torch.zeros_like(types), types)]
        first = [next(v for v in o.values() if isinstance(v, torch.Tensor)) for o in outputs]
        return first[0].shape == first[1].shape and not torch.allclose(first[0], first[1], rtol=0, atol=1e-6)
    except Exception:  # noqa: BLE001 - a model that cannot run on a pair this way: its segment ids are not read
        return False


def _optional(param) -> bool:
    """A forward parameter that defaults to None: the model runs without it."""
    return param.default is None


# Inputs that carry something besides the text; a model that reads them cannot be served on text alone.
# name -> (what it is, whether this config and the forward parameter still let the model run on text alone)
NON_TEXT_INPUTS = {
    "bbox": ("the page layout, a bounding box per token (`bbox`)", lambda config, param: False),
    # A text encoder that also reads images (ModernVBERT, UltraVBERT, T5Gemma 2's encoder) runs on text alone when
    # its image is optional: its text path is what a text query (a retrieval query, a sentence) goes through. (A
    # model whose forward still fails without one fails in PyTorch on real text: refused in one sentence.)
    "pixel_values": ("an image (`pixel_values`)", lambda config, param: _optional(param)),
    "image": ("an image (`image`)", lambda config, param: _optional(param)),
    "xpath_tags_seq": ("the HTML structure, an XPath per token (`xpath_tags_seq`)", lambda config, param: False),
    # LXMERT: image regions beside the text (its forward refuses to run without them).
    "visual_feats": ("image regions (`visual_feats` and their boxes)", lambda config, param: False),
    # VisualBERT: optional image regions; without them it is a BERT on the text.
    "visual_embeds": ("image regions (`visual_embeds`)", lambda config, param: _optional(param)),
    # X-MOD: one language adapter per text, unless the checkpoint names a default language.
    "lang_ids": ("a language id per text (`lang_ids`, or a default_language in its config.json)",
                 lambda config, param: getattr(config, "default_language", None) is not None),
    # XLM with language embeddings: a language id per token (without them the model reads no language at all).
    "langs": ("a language id per token (`langs`)",
              lambda config, param: (not getattr(config, "use_lang_emb", False)
                                     or getattr(config, "n_langs", 1) <= 1)),
    # TAPAS: a table flattened after the question, each token with its segment, column, row and ranks.
    "token_type_ids": ("a table, the column, row and rank of every token (`token_type_ids` of several kinds)",
                       lambda config, param: len(getattr(config, "type_vocab_sizes", None) or ()) <= 1),
}


def check_text_only(model, config) -> None:
    """Refuse, in one sentence, a model (or model class) that needs inputs besides the text (layout boxes, images,
    language ids)."""
    cls = model if isinstance(model, type) else type(model)
    params = inspect.signature(model.forward).parameters
    for name, (what, text_suffices) in NON_TEXT_INPUTS.items():
        if name in params and not text_suffices(config, params[name]):
            raise UserError(f"{cls.__name__} cannot be served by inferforge: besides the text it needs "
                            f"{what}, and inferforge gives a model text only.")


def _task_model_class(task: TaskSpec, config):
    """The class transformers' auto class of the task builds for this config, or None (remote code, no mapping)."""
    try:
        return task.auto_model_class()._model_mapping[type(config)]
    except Exception:  # noqa: BLE001 - not in the mapping: the load itself says what is wrong
        return None


def graph_input_names(model, config, task: TaskSpec, tokenizer=None) -> tuple[str, ...]:
    """The ONNX graph's inputs: the model's own, plus the attention mask that pooling needs."""
    names = model_input_names(model, config, tokenizer)
    if task.name == "feature-extraction" and "attention_mask" not in names:
        names = (names[0], "attention_mask", *names[1:])
    return names


def _position_offset(model) -> int:
    """Positions a model reserves below its first real token: RoBERTa-style embeddings (XLM-RoBERTa,
    CamemBERT, MPNet, ...) count positions from padding_idx + 1, so they hold padding_idx + 1 fewer tokens."""
    import torch

    for name, module in model.named_modules():
        if name.endswith("position_embeddings") and isinstance(module, torch.nn.Embedding):
            return 0 if module.padding_idx is None else int(module.padding_idx) + 1
    return 0


def pad_token_id(tokenizer, config) -> int:
    """The id the tokenizer pads with (what transformers pads with), else the config's, else 0."""
    for candidate in (getattr(tokenizer, "pad_token_id", None), getattr(config, "pad_token_id", None)):
        if isinstance(candidate, int) and 0 <= candidate < (getattr(config, "vocab_size", None) or 1 << 62):
            return candidate
    return 0


def _max_length(tokenizer, config, directory: Path | None, model=None) -> int:
    candidates = []
    # A sentence-transformers max_seq_length replaces the tokenizer's limit (the library truncates there).
    st = _sentence_transformers_max_length(directory) if directory is not None else None
    tok_max = getattr(tokenizer, "model_max_length", None)
    if tok_max and tok_max < 1_000_000 and not st:
        candidates.append(int(tok_max))
    positions = getattr(config, "max_position_embeddings", None)
    # Relative-position models (DeBERTa-v2/v3: position_biased_input false) are not bound by the table.
    if positions and positions > 0 and getattr(config, "position_biased_input", True) is not False:
        if model is not None:
            offset = _position_offset(model)
        else:  # no model at hand: the RoBERTa family by name
            roberta_like = getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert", "mpnet")
            offset = (getattr(config, "pad_token_id", 0) or 0) + 1 if roberta_like else 0
        candidates.append(int(positions) - offset)
    # BigBird's block-sparse attention starts past this many tokens (full attention up to it); the exported
    # graph holds the full-attention path only, so longer texts are truncated to where the two agree.
    if getattr(config, "attention_type", None) == "block_sparse" and getattr(config, "block_size", None):
        candidates.append((5 + 2 * int(getattr(config, "num_random_blocks", 0) or 0)) * int(config.block_size))
    if st:
        candidates.append(int(st))
    return min(candidates) if candidates else 512


def _hub_snapshot_with_modules(model: str) -> Path | None:
    """The cached snapshot folder of a hub model with its sentence-transformers files, or None."""
    from huggingface_hub import hf_hub_download

    try:
        folder = Path(hf_hub_download(model, "modules.json")).parent
    except Exception:  # noqa: BLE001 - a hub model without modules.json is a plain transformer
        return None
    try:
        modules = json.loads((folder / "modules.json").read_text())
    except ValueError:
        modules = []
    for name in ("sentence_bert_config.json", "config_sentence_transformers.json", *module_files(modules)):
        try:
            hf_hub_download(model, name)
        except Exception:  # noqa: BLE001 - optional files (a module keeps one of its weight formats)
            pass
    return folder


def transformer_folder(directory: Path) -> Path:
    """The Hugging Face folder inside a local model directory: the directory itself, or the Transformer
    module's folder of a sentence-transformers directory that keeps it in a sub-folder."""
    if directory.is_file():
        raise UserError(f"'{directory}' is a file; give the model's folder"
                        + (f" ('{directory.parent}')." if directory.name == "config.json" else "."))
    folder = transformer_settings(directory).folder  # checks modules.json's modules and their folders
    if (folder / "config.json").exists():
        return folder
    raise UserError(f"'{directory}' is not a Hugging Face model directory: it has no config.json.")


def _fast_twin(tokenizer, task: TaskSpec):
    """The fast twin of a Python-only tokenizer (ESM) when it gives the same ids on the built-in texts, else None."""
    from inferforge.tokenization import fast_from_python_tokenizer, same_tokens
    from inferforge.verify import builtin_texts

    try:
        fast = fast_from_python_tokenizer(tokenizer)
    except Exception:  # noqa: BLE001 - no twin: the caller says the model has no fast tokenizer
        return None
    if fast is None:
        return None
    texts, pairs = builtin_texts(task)
    return fast if same_tokens(tokenizer, fast, texts, pairs) else None


# Encoder-decoder models whose sentence embeddings come from the encoder alone, as sentence-transformers
# reads them: through the `<Model>EncoderModel` class transformers has (T5, mT5, UMT5, LongT5, Switch
# Transformers, T5Gemma), or else the encoder stack of these (their AutoModel reads the decoder's states;
# BART's stays as AutoModel reads it, which is what sentence-transformers does too).
ENCODER_STACK_TYPES = ("pegasus", "pegasus_x", "marian", "m2m_100", "nllb-moe", "blenderbot", "blenderbot-small",
                       "prophetnet", "t5gemma2")


def _saved_encoder_class(config):
    """The class of an encoder saved alone, as sentence-transformers saves them (`architectures`:
    T5EncoderModel, PegasusEncoder, ...), or None."""
    import importlib

    import transformers

    folder = str(getattr(config, "model_type", "")).replace("-", "_")
    for name in getattr(config, "architectures", None) or ():
        if not name.endswith(("Encoder", "EncoderModel")):
            continue
        found = getattr(transformers, name, None)
        if found is None and folder:
            try:
                found = getattr(importlib.import_module(f"transformers.models.{folder}.modeling_{folder}"), name, None)
            except ImportError:
                found = None
        if found is not None:
            return found
    return None


def _load_torch_model(task: TaskSpec, config, source: str, trust_remote_code: bool, model_kwargs: dict | None = None):
    """The model, and the names of the weights its checkpoint lacked (transformers initialized them at random)."""
    loaded = _load_weights(task, config, source, trust_remote_code, model_kwargs or {})
    model, info = loaded if isinstance(loaded, tuple) else (loaded, {})
    missing = sorted(str(key) for key in (info.get("missing_keys") or ()))
    if task.name == "feature-extraction":  # the pooler is not read: embeddings pool the token states
        missing = [key for key in missing if "pooler" not in key.split(".")]
    return _traceable_experts(model), missing


def mismatched_weights_message(model: str, task: TaskSpec, config, source: str, trust_remote_code: bool,
                               model_kwargs: dict) -> str:
    """One sentence for a checkpoint whose weights have other shapes than its config.json gives them (most often an
    id2label edited after training: the classifier has another number of outputs than the config has labels)."""
    found = []
    try:
        loaded = _load_weights(task, config, source, trust_remote_code, {**model_kwargs, "ignore_mismatched_sizes": True})
        info = loaded[1] if isinstance(loaded, tuple) else {}
        found = sorted((str(k), tuple(ckpt), tuple(mine)) for k, ckpt, mine in info.get("mismatched_keys") or ())
    except Exception:  # noqa: BLE001 - the sentence below then names no weight
        pass
    labels = int(getattr(config, "num_labels", 0) or 0)
    outputs = {ckpt[0] for _, ckpt, mine in found if ckpt and mine and mine[0] == labels and ckpt[0] != labels}
    shown = "; ".join(f"{key}: {list(ckpt)} in the checkpoint, {list(mine)} by the config" for key, ckpt, mine
                      in found[:4]) + (f"; and {len(found) - 4} more" if len(found) > 4 else "")
    sentence = f"'{model}' has weights of other shapes than its config.json gives them" + (f" ({shown})" if shown else "")
    if task.name in ("text-classification", "token-classification") and len(outputs) == 1:
        return (sentence + f": its config names {labels} label{'s' * (labels != 1)} (id2label / num_labels) where the "
                f"checkpoint's head has {outputs.pop()} outputs; give config.json's id2label one name per output.")
    return sentence + ": use the config.json the weights were saved with."


def _damaged_weights(model: str, error: Exception) -> str:
    """One sentence for a weights file safetensors or torch cannot read (a download or copy cut short)."""
    return (f"'{model}' has a weights file that cannot be read ({first_line(error, 100)}): it is damaged or incomplete, as "
            "after an interrupted download or copy; fetch or save it again.")


def vocabulary_warning(model: str, tokenizer, torch_model) -> str | None:
    """One sentence for a tokenizer with ids past the model's token embedding rows (tokens added to the tokenizer, the
    model not resized): a text holding one fails in transformers, and predict and the server refuse it; else None."""
    try:
        rows = int(torch_model.get_input_embeddings().num_embeddings)
        beyond = sorted((i, str(t)) for t, i in tokenizer.get_vocab().items() if i >= rows)
    except Exception:  # noqa: BLE001 - a model without a token embedding table (nothing to check)
        return None
    if not beyond:
        return None
    shown = ", ".join(repr(t) for _, t in beyond[:3]) + (f" and {len(beyond) - 3} more" if len(beyond) > 3 else "")
    return (f"'{model}' has a tokenizer whose tokens {shown} (ids {beyond[0][0]} and up) are past its model's {rows} "
            "token embedding rows: a text holding one fails in transformers and is refused by predict and the server; "
            "after adding tokens, resize the model (model.resize_token_embeddings(len(tokenizer))) and save it again.")


def missing_weights_warning(model: str, task: TaskSpec, missing: list[str]) -> str | None:
    """One sentence for a checkpoint that lacks weights of the model it is loaded as (a base model converted for
    classification: its head is random), or None."""
    if not missing:
        return None
    shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
    return (f"'{model}' has no weights for {shown}: transformers initialized {'it' if len(missing) == 1 else 'them'} "
            f"at random, so its {task.name} answers mean nothing until it is fine-tuned (speed and the checks "
            "against PyTorch still hold).")


def _traceable_experts(model):
    """Mixture-of-experts layers computed for every token the same way (`batched_mm`: each token gathers its
    experts' weights). transformers' default (`grouped_mm`) and its eager loop route tokens with Python-level
    sizes and loops that the exporter freezes at the traced input: the graph then fails or drops experts on
    other texts."""
    can_set = getattr(model, "_can_set_experts_implementation", None)
    if can_set is not None and can_set():
        model.set_experts_implementation("batched_mm")
    return model


# sentence-transformers model_kwargs that inferforge sets itself: the reference is read in fp32 on the CPU (a dtype
# there is checked and said by `loading_dtype_warning`).
OWN_LOADING_KWARGS = ("dtype", "torch_dtype", "device_map", "low_cpu_mem_usage", "trust_remote_code")


def loading_dtype_warning(model: str, model_kwargs: dict) -> str | None:
    """One sentence for a sentence-transformers directory whose model_kwargs load the model in another precision than
    fp32 (`dtype` or `torch_dtype`: bfloat16, float16, float64), which the library's `encode` then computes in; None
    for float32 or 'auto' (a half checkpoint is read in fp32 like any other). inferforge reads the weights in fp32,
    the reference every variant is checked against, and says so. Any other value (neither 'auto' nor a floating-point
    torch dtype's name, e.g. 'torch.bfloat16', on which loading the folder with sentence-transformers fails too) is
    refused in one sentence."""
    import torch

    for key in ("dtype", "torch_dtype"):
        value = model_kwargs.get(key)
        if value is None or value == "auto":
            continue
        dtype = getattr(torch, value, None) if isinstance(value, str) else None
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise UserError(f"'{model}' asks sentence-transformers to load it with {key}={value!r} (model_kwargs in "
                            "its sentence_bert_config.json), which is neither 'auto' nor the name of a floating-point "
                            "torch dtype such as 'float32' or 'bfloat16'; sentence-transformers cannot load the "
                            "folder with it either.")
        if dtype != torch.float32:
            return (f"'{model}' asks sentence-transformers to load it in {str(dtype).removeprefix('torch.')} ({key} in "
                    "its model_kwargs), which the library computes its outputs in; inferforge reads it in float32, "
                    "the reference every variant is checked against, so its outputs differ from the library's by "
                    "that rounding only (the bf16 variants run it at reduced precision).")
    return None


def _load_weights(task: TaskSpec, config, source: str, trust_remote_code: bool, model_kwargs: dict):
    import torch
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES

    # fp32 whatever the checkpoint holds: transformers 5 loads a model in the dtype it was saved in (fp16 and
    # bf16 checkpoints are common on the hub), which would make the reference, the export and every variant
    # half precision (a bf16 graph onnxruntime cannot even run on a CPU).
    kwargs = {k: v for k, v in model_kwargs.items() if k not in OWN_LOADING_KWARGS}
    kwargs.update(config=config, trust_remote_code=trust_remote_code, use_safetensors=None, dtype=torch.float32,
                  output_loading_info=True)
    auto = task.auto_model_class()
    if task.name == "feature-extraction":
        encoder_class = _saved_encoder_class(config)
        if encoder_class is not None:
            return encoder_class.from_pretrained(source, **kwargs)
        if getattr(config, "is_encoder_decoder", False):  # a whole checkpoint: read by its encoder
            base = MODEL_MAPPING_NAMES.get(config.model_type)
            encoder_class = getattr(transformers, base.removesuffix("Model") + "EncoderModel", None) \
                if isinstance(base, str) else None
            if encoder_class is not None:
                try:
                    return encoder_class.from_pretrained(source, **kwargs)
                except ValueError:  # T5Gemma's takes an encoder-only config, not a whole checkpoint's: its stack then
                    return auto.from_pretrained(source, **kwargs)[0].get_encoder()
            if config.model_type in ENCODER_STACK_TYPES:
                return auto.from_pretrained(source, **kwargs)[0].get_encoder()
    return auto.from_pretrained(source, **kwargs)


def _sentencepiece_without_package(folder: Path | None) -> str | None:
    """The SentencePiece model file of a local folder whose only tokenizer it is (no tokenizer.json), when the
    sentencepiece package that reads it is not installed; None otherwise. transformers then says something unrelated
    (that tiktoken is needed), and logs the real reason as a warning."""
    import importlib.util

    if folder is None or not folder.is_dir() or (folder / "tokenizer.json").exists():
        return None
    if importlib.util.find_spec("sentencepiece") is not None:
        return None
    found = sorted(p.name for p in folder.glob("*.model") if p.is_file())
    return found[0] if found else None


def _sentencepiece_unreadable(folder: Path | None) -> tuple[str, str] | None:
    """(SentencePiece model file, reason) when a local folder's only tokenizer is a SentencePiece model that
    transformers cannot read with the protobuf package installed (older than the code transformers generated for
    it); None otherwise. transformers then says that tiktoken is needed, and logs the real reason as a warning."""
    if folder is None or not folder.is_dir() or (folder / "tokenizer.json").exists():
        return None
    found = sorted(p.name for p in folder.glob("*.model") if p.is_file())
    if not found:
        return None
    try:
        from transformers.convert_slow_tokenizer import import_protobuf

        import_protobuf()
    except Exception as error:  # noqa: BLE001 - protobuf's VersionError, or no protobuf at all
        return found[0], first_line(error, 160)
    return None


def _custom_code(folder: Path | None) -> str:
    """The Python files a model's config.json `auto_map` names (\"auto_map in its config.json\" for a hub id)."""
    try:
        auto_map = json.loads((folder / "config.json").read_text()).get("auto_map") or {}
    except (OSError, ValueError, TypeError, AttributeError):
        return "auto_map in its config.json"
    files = sorted({str(ref).split("--")[-1].split(".")[0] + ".py" for refs in auto_map.values()
                    for ref in (refs if isinstance(refs, list) else [refs]) if ref})
    return ", ".join(files) if files else "auto_map in its config.json"


def apply_cross_encoder_activation(model: str, folder: Path | None, config) -> None:
    """A sentence-transformers CrossEncoder's answers go through the activation it names (`predict` applies it): a
    one-output model's score is its sigmoid (the default) or, with Identity, the raw logit (transformers'
    problem_type regression, whose pipeline applies no function either); several outputs with Sigmoid are
    independent labels (multi_label_classification). Said in the config, which the manifest and the server read.
    Another activation on one output is refused in one sentence."""
    from inferforge.tasks import MULTI_LABEL, REGRESSION

    activation = cross_encoder_activation(folder, config)
    if activation is None:
        return
    one_output = int(getattr(config, "num_labels", 2) or 2) == 1
    if one_output and activation == "Identity":
        config.problem_type = REGRESSION
    elif one_output and activation == "Sigmoid":
        if getattr(config, "problem_type", None) == REGRESSION:
            config.problem_type = None  # the sigmoid, as predict gives it
    elif one_output:
        raise UserError(f"'{model}' is a sentence-transformers CrossEncoder whose scores go through torch.nn.{activation}"
                        ", and inferforge answers a one-output model's sigmoid (Sigmoid) or raw logit (Identity) only.")
    elif activation == "Sigmoid":
        config.problem_type = MULTI_LABEL


def check_tokenizer_kwargs(model: str, tokenizer, tokenizer_kwargs: dict, task: TaskSpec) -> None:
    """The sentence-transformers tokenizer arguments reach the tokens inferforge gives the model: its tokenizer.json
    (which predict and the server read) gives the ids the loaded tokenizer gives, on the built-in texts, and nothing
    is cut from the left. Otherwise one sentence naming them."""
    from tokenizers import Tokenizer

    from inferforge.tokenization import same_tokens
    from inferforge.verify import builtin_texts

    named = ", ".join(f"{k}={v!r}" for k, v in sorted(tokenizer_kwargs.items()))
    reason = None
    if getattr(tokenizer, "truncation_side", "right") != "right":
        reason = "it cuts long texts from the left"
    else:
        try:
            twin = transformers_twin(tokenizer, Tokenizer)
            texts, pairs = builtin_texts(task)
            if not same_tokens(tokenizer, twin, texts, pairs):
                reason = "its tokenizer.json gives other tokens than the tokenizer they make"
        except Exception:  # noqa: BLE001 - no tokenizer.json: load_source says so
            return
    if reason:
        raise UserError(f"'{model}' loads its tokenizer with {named} (sentence-transformers tokenizer arguments), "
                        f"which inferforge cannot give the server: {reason}.")


def transformers_twin(tokenizer, tokenizer_class):
    """The loaded tokenizer's tokenizer.json as a transformers tokenizer (what predict and the server tokenize with)."""
    import transformers

    backend = tokenizer_class.from_str(tokenizer.backend_tokenizer.to_str())
    return transformers.PreTrainedTokenizerFast(tokenizer_object=backend,
                                                model_input_names=list(tokenizer.model_input_names))


HUB_CHECK_TIMEOUT_S = 3.0


def check_hub_id(model: str) -> None:
    """A hub id that cannot be fetched is said at once: a local path mistyped ('models/bert-tcc' where the folder
    'models' is here) or a hub that does not answer (huggingface_hub retried for about 50 s, printing each retry).
    A model in the local Hugging Face cache is loaded from it."""
    import os
    import socket
    from urllib.parse import urlparse

    parent = Path(model).parent
    # A local folder of models (one with config.json or modules.json) named like the hub id's organisation: a typo.
    models = sorted(p.name for p in parent.iterdir() if p.is_dir() and not p.name.startswith(".")
                    and ((p / "config.json").is_file() or (p / "modules.json").is_file())) \
        if str(parent) != "." and parent.is_dir() else []
    if models:
        raise UserError(f"Model path '{model}' does not exist ('{parent}' is a local folder of models, so this is read "
                        f"as a path, not a hub id; it holds: {', '.join(models[:5])}).")
    from huggingface_hub import constants, try_to_load_from_cache

    cached = try_to_load_from_cache(model, "config.json")
    offline = constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")
    if offline:
        return  # from the cache (offline: transformers says itself what is missing)
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or constants.ENDPOINT)
    try:
        socket.create_connection((endpoint.hostname, endpoint.port or (443 if endpoint.scheme == "https" else 80)),
                                 timeout=HUB_CHECK_TIMEOUT_S).close()
    except OSError:
        if isinstance(cached, str):
            # In the cache and the hub out of reach: read the cache as HF_HUB_OFFLINE=1 does. transformers and
            # huggingface_hub otherwise retried every file's request (minutes, printing each retry) before using it.
            os.environ["HF_HUB_OFFLINE"] = "1"
            constants.HF_HUB_OFFLINE = True
            return
        raise UserError(f"'{model}' is not a local folder, and the Hugging Face Hub ({endpoint.hostname}) cannot be "
                        "reached from here to fetch it; download the model and pass its local directory "
                        "instead.") from None


def load_source(model: str, task: TaskSpec, trust_remote_code: bool = False,
                prompt_name: str | None = None) -> SourceModel:
    """Load tokenizer, config and model for `task`; every failure a user can cause is a UserError.
    `prompt_name`: the sentence-transformers prompt put before every text (feature-extraction)."""
    import os

    from huggingface_hub import constants

    # check_hub_id reads a cached model offline when the hub is out of reach: for this load only.
    saved = os.environ.get("HF_HUB_OFFLINE"), constants.HF_HUB_OFFLINE
    try:
        return _load_source(model, task, trust_remote_code, prompt_name)
    finally:
        if saved[0] is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved[0]
        constants.HF_HUB_OFFLINE = saved[1]


def _load_source(model: str, task: TaskSpec, trust_remote_code: bool, prompt_name: str | None) -> SourceModel:
    _quiet_transformers()
    import transformers

    path = Path(model).expanduser()
    local = path.exists()
    if not local and not HUB_ID.match(model):
        raise UserError(f"Model path '{model}' does not exist.")
    if not local:
        check_hub_id(model)
    root = path
    if local:
        path = transformer_folder(path)
        check_task_modules(root, task.name)
    source = str(path) if local else model
    # The sentence-transformers files (a hub model's: its cached snapshot, when it has modules.json).
    folder = root if local else _hub_snapshot_with_modules(model)
    if not local and folder is not None:
        check_task_modules(folder, task.name)
    # What the library passes to transformers when it loads the model (its Transformer module's configuration).
    settings = transformer_settings(folder) if folder is not None else TransformerSettings(path)
    dtype_warning = loading_dtype_warning(model, settings.model_kwargs)
    try:
        config = transformers.AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code,
                                                         **settings.config_kwargs)
        if task.name == "text-classification":
            apply_cross_encoder_activation(model, folder, config)
        # Before the weights: a model that needs more than text is refused for that, not for a package its
        # non-text inputs need (LayoutLMv2's detectron2, for its image).
        model_class = _task_model_class(task, config)
        if model_class is not None:
            check_text_only(model_class, config)
        torch_model, missing = _load_torch_model(task, config, source, trust_remote_code, settings.model_kwargs)
        torch_model.eval()
        # First: no tokenizer (nor a package it needs, as TAPAS's needs pandas) would make such a model servable.
        check_text_only(torch_model, config)
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code,
                                                                   **settings.tokenizer_kwargs)
        except Exception:  # noqa: BLE001 - said below, or in the clauses after this one
            missing = _sentencepiece_without_package(path if local else None)
            if missing:
                raise UserError(f"'{model}' has its tokenizer as a SentencePiece model ({missing}) and no "
                                "tokenizer.json; reading it needs the sentencepiece package (pip install "
                                "sentencepiece), or save the tokenizer's tokenizer.json into the folder where it "
                                "loads (AutoTokenizer.from_pretrained(...).save_pretrained(folder)).") from None
            unreadable = _sentencepiece_unreadable(path if local else None)
            if unreadable:
                raise UserError(f"'{model}' has its tokenizer as a SentencePiece model ({unreadable[0]}) and no "
                                f"tokenizer.json, and transformers cannot read it here: {unreadable[1]} (pip install -U "
                                "protobuf), or save the tokenizer's tokenizer.json into the folder where it loads "
                                "(AutoTokenizer.from_pretrained(...).save_pretrained(folder)).") from None
            raise
    except OSError as error:
        if local:
            raise UserError(f"Could not load the model in '{model}': {first_line(error)}.") from None
        raise UserError(
            f"Could not fetch '{model}' from the Hugging Face Hub (unreachable or unknown id); "
            "download it and pass its local directory instead."
        ) from None
    except ValueError as error:
        if "contains custom code" in str(error) and not trust_remote_code:
            raise UserError(f"'{model}' runs its own Python code ({_custom_code(path if local else None)}): read it, "
                            "and if you trust it pass --trust-remote-code (Python: trust_remote_code=True).") from None
        raise UserError(
            f"'{model}' cannot be loaded for {task.name}: {first_line(error)}."
        ) from None
    except TypeError as error:
        loading = {**settings.config_kwargs, **settings.model_kwargs, **settings.tokenizer_kwargs}
        if not loading:
            raise
        # An argument the model class does not take: the library fails on the folder alike.
        raise UserError(f"'{model}' cannot be loaded with its sentence-transformers loading arguments "
                        f"({', '.join(sorted(loading))}): {first_line(error)}.") from None
    except ImportError as error:  # a tokenizer or model that needs an optional package (RoFormer: rjieba)
        raise UserError(f"'{model}' needs a package that is not installed: {first_line(error)}.") from None
    except RuntimeError as error:
        if "PytorchStreamReader" in str(error):  # a pytorch_model.bin cut short
            raise UserError(_damaged_weights(model, error)) from None
        if "ignore_mismatched_sizes" not in str(error):
            raise
        # transformers 5 refuses weights of other shapes than the config gives them, pointing at a report in its log.
        raise UserError(mismatched_weights_message(model, task, config, source, trust_remote_code,
                                                   settings.model_kwargs)) from None
    except Exception as error:
        if type(error).__name__ not in ("SafetensorError", "UnpicklingError"):
            raise
        raise UserError(_damaged_weights(model, error)) from None
    if len(tokenizer) <= len(set(tokenizer.all_special_ids)) + 1:
        # transformers builds an empty tokenizer (its special tokens only) when the folder has no tokenizer files.
        raise UserError(f"'{model}' has no tokenizer files (tokenizer.json, or vocab.txt / sentencepiece model): "
                        "copy the tokenizer of the model into the folder.")
    if not getattr(tokenizer, "is_fast", False) or not hasattr(tokenizer, "backend_tokenizer"):
        tokenizer = _fast_twin(tokenizer, task) or tokenizer
    if not getattr(tokenizer, "is_fast", False) or not hasattr(tokenizer, "backend_tokenizer"):
        raise UserError(f"'{model}' has no fast tokenizer (tokenizer.json; its {type(tokenizer).__name__} exists in "
                        "Python only); inferforge needs one to serve the model.")
    try:
        tokenizer.backend_tokenizer.to_str()
    except Exception:  # noqa: BLE001 - a custom (Python) pre-tokenizer or normalizer: tokenizer.json cannot hold it
        raise UserError(f"'{model}' has a tokenizer that runs Python code ({type(tokenizer).__name__} splits words "
                        "with a custom pre-tokenizer) which tokenizer.json cannot hold, so inferforge cannot serve "
                        "it.") from None
    if getattr(tokenizer, "truncation_side", "right") != "right" and not settings.tokenizer_kwargs:
        # transformers cuts a long text from the left there (tokenizer_config.json truncation_side); the encoder that
        # predict and the server run cuts from the right, so long texts would get other answers than transformers'.
        raise UserError(f"'{model}' has a tokenizer that cuts long texts from the left (truncation_side "
                        f"{tokenizer.truncation_side!r} in its tokenizer_config.json), which inferforge cannot give the "
                        f"server; set it to 'right' if the model allows, or shorten the texts first.")
    labels = None
    if task.name in ("text-classification", "token-classification"):
        id2label = getattr(config, "id2label", None) or {}
        labels = [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(config.num_labels)]
    if settings.tokenizer_kwargs:
        check_tokenizer_kwargs(model, tokenizer, settings.tokenizer_kwargs, task)
    if settings.lower_case:
        lowercase_first(tokenizer)
    pooling = None
    if task.name == "feature-extraction":
        pooling = read_pooling(folder, prompt_name)
    return SourceModel(
        name=model,
        model=torch_model,
        tokenizer=tokenizer,
        config=config,
        input_names=graph_input_names(torch_model, config, task, tokenizer),
        max_length=_max_length(tokenizer, config, folder, torch_model),
        labels=labels,
        pooling=pooling,
        pad_id=pad_token_id(tokenizer, config),
        prompt=pooling.prompt if pooling is not None else pair_prompt(folder, task.name) if folder else "",
        warnings=[w for w in [missing_weights_warning(model, task, missing), dtype_warning,
                              vocabulary_warning(model, tokenizer, torch_model)] if w],
    )
