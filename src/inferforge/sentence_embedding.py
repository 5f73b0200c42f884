"""Sentence embeddings the way a sentence-transformers directory says to make them.

`modules.json` lists what runs after the transformer: a Pooling module (one or several modes,
concatenated in the order given), then any of Dense (a linear layer and its activation), LayerNorm,
Dropout (nothing at inference) and Normalize, in that file's order. `read_pooling` reads them (the
configuration files of sentence-transformers 2.x to 6.x, legacy `pooling_mode_*_tokens` flags and the
newer `pooling_mode` name or list), and `sentence_head` computes them in PyTorch, so they become part of
the exported graph and every runtime and the server return the finished embedding. The default prompt
(`config_sentence_transformers.json`: `default_prompt_name` in `prompts`), which `encode` puts before every
text, is put there too, by the tokenizer, and `truncate_dim` (Matryoshka models) keeps the vector's first
dimensions, as `encode` does. The Transformer module's own configuration (`sentence_bert_config.json`, or
the older `sentence_<model>_config.json`, in its folder, which may be a sub-folder): `max_seq_length` (or a
`model_max_length` among its tokenizer arguments) and `do_lower_case` (`transformer_settings`). A module this
cannot compute (a word-embedding, static-embedding or LSTM model, a sparse SPLADE encoder, a router between
a query and a document encoder, a prompt excluded from pooling) or a module folder outside the model
directory is a `UserError` naming it, never a silently different vector.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

from inferforge.errors import UserError, first_line

# Legacy flags, in the order sentence-transformers concatenates the vectors of several modes.
LEGACY_FLAGS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
POOLING_MODES = tuple(LEGACY_FLAGS.values())
# Activations a Dense module may name (by class name, from torch.nn); nothing else is imported.
ACTIVATIONS = ("Identity", "Tanh", "ReLU", "GELU", "Sigmoid", "SiLU", "LeakyReLU", "ELU", "Softplus", "Mish")
MODULE_KINDS = ("Transformer", "Pooling", "Dense", "LayerNorm", "Dropout", "Normalize")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class Step:
    """One module after pooling: "dense" | "layernorm" | "normalize", with its folder and sizes."""

    kind: str
    path: str = ""
    in_features: int = 0
    out_features: int = 0
    bias: bool = True
    activation: str = "Identity"
    residual: bool = False

    def to_dict(self) -> dict:
        if self.kind == "normalize":
            return {"kind": "normalize"}
        if self.kind == "layernorm":
            return {"kind": "layernorm", "path": self.path, "dimension": self.in_features}
        return {"kind": "dense", "path": self.path, "in_features": self.in_features, "out_features": self.out_features,
                "bias": self.bias, "activation": self.activation, "residual": self.residual}


@dataclass(frozen=True)
class Pooling:
    """How token states become one sentence vector (sentence-transformers semantics)."""

    modes: tuple[str, ...] = ("mean",)
    steps: tuple[Step, ...] = ()
    source: str = "default (mean pooling)"
    directory: str | None = field(default=None, compare=False)  # where the steps' weights are
    prompt: str = ""  # put before every text (the default prompt of sentence-transformers' encode)
    truncate_dim: int | None = None  # keep the first dimensions of the finished vector (Matryoshka)

    @property
    def mode(self) -> str:
        return "+".join(self.modes)

    @property
    def normalize(self) -> bool:
        return any(s.kind == "normalize" for s in self.steps)

    def to_dict(self) -> dict:
        return {"mode": self.mode, "modes": list(self.modes), "normalize": self.normalize,
                "steps": [s.to_dict() for s in self.steps], "source": self.source, "prompt": self.prompt,
                "truncate_dim": self.truncate_dim}

    def head(self):
        """The PyTorch module computing this pooling and its steps: (token states, attention mask) -> vector."""
        return sentence_head(self)


def _json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"Cannot read the sentence-transformers {what} '{path}': {error}.") from None


def _pooling_modes(config: dict, where: Path, prompt: str) -> tuple[str, ...]:
    named = config.get("pooling_mode")
    if named is not None:
        modes = (named,) if isinstance(named, str) else tuple(named)
    else:
        modes = tuple(mode for flag, mode in LEGACY_FLAGS.items() if config.get(flag, False)) or ("mean",)
    unknown = [m for m in modes if m not in POOLING_MODES]
    if unknown or not modes:
        raise UserError(f"The pooling mode {unknown[0] if unknown else modes!r} in '{where}' is not one sentence-"
                        f"transformers defines ({', '.join(POOLING_MODES)}).")
    if config.get("include_prompt", True) is False and prompt:  # without a prompt there is nothing to exclude
        raise UserError(f"'{where}' excludes the prompt {prompt!r} from pooling (include_prompt: false), which "
                        "inferforge does not do: its embeddings would differ from the model's.")
    return modes


def _dense_step(config: dict, path: str, where: Path) -> Step:
    if config.get("module_input_name", "sentence_embedding") != "sentence_embedding" or \
            config.get("module_output_name") not in (None, "sentence_embedding"):
        raise UserError(f"The Dense module in '{where}' works on token embeddings, not on the sentence embedding: "
                        "inferforge makes one vector per text.")
    activation = str(config.get("activation_function") or "torch.nn.modules.activation.Tanh").rsplit(".", 1)[-1]
    if activation not in ACTIVATIONS:
        raise UserError(f"The Dense module in '{where}' uses the activation {config.get('activation_function')!r}; "
                        f"inferforge computes {', '.join(ACTIVATIONS)}.")
    return Step("dense", path, int(config["in_features"]), int(config["out_features"]), bool(config.get("bias", True)),
                activation, bool(config.get("use_residual", False)))


def module_list(directory: Path) -> list[tuple[str, str]] | None:
    """(kind, folder) of each module in `directory`'s modules.json, in order (None: no modules.json). A folder
    must lie inside the directory (sentence-transformers refuses the others too), and a module must be one
    inferforge computes (the Transformer, or what follows it: MODULE_KINDS)."""
    modules_file = directory / "modules.json"
    if not modules_file.exists():
        return None
    modules = _json(modules_file, "module list")
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise UserError(f"'{modules_file}' is not a sentence-transformers module list (a JSON list of modules).")
    listed = []
    for module in modules:
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        path = str(module.get("path", "") or "")
        if PurePosixPath(path).is_absolute() or PureWindowsPath(path).is_absolute() or PureWindowsPath(path).drive \
                or ".." in PurePosixPath(path.replace("\\", "/")).parts:
            raise UserError(f"'{modules_file}' puts the module {kind or '?'} in {path!r}, outside the model "
                            "directory; module paths must be relative to it, without '..'.")
        if kind not in MODULE_KINDS:
            raise UserError(f"The sentence-transformers module {module.get('type')!r} in '{modules_file}' is not one "
                            f"inferforge can compute ({', '.join(MODULE_KINDS)}).")
        listed.append((kind, path))
    return listed


# The Transformer module's configuration: sentence-transformers reads the first of these that exists.
TRANSFORMER_CONFIG_FILES = ("sentence_bert_config.json", "sentence_roberta_config.json",
                            "sentence_distilbert_config.json", "sentence_camembert_config.json",
                            "sentence_albert_config.json", "sentence_xlm-roberta_config.json",
                            "sentence_xlnet_config.json")


@dataclass(frozen=True)
class TransformerSettings:
    """What a sentence-transformers Transformer module changes in how its texts are read."""

    folder: Path  # the Hugging Face folder (the directory, or the module's sub-folder)
    max_length: int | None = None  # tokens read per text, as the library truncates (None: the tokenizer's)
    lower_case: bool = False  # do_lower_case: lowercase every text first, whatever the tokenizer does
    # What the library passes to transformers when it loads the module: AutoConfig.from_pretrained(**config_kwargs),
    # the model's from_pretrained(**model_kwargs), AutoTokenizer.from_pretrained(**tokenizer_kwargs) (the file's
    # config_kwargs / model_kwargs / processor_kwargs, or the older config_args / model_args / tokenizer_args).
    config_kwargs: dict = field(default_factory=dict)
    model_kwargs: dict = field(default_factory=dict)
    tokenizer_kwargs: dict = field(default_factory=dict)


def transformer_settings(directory: Path) -> TransformerSettings:
    """The Transformer module's folder and settings in a sentence-transformers directory (a plain Hugging Face
    directory: itself, no settings). sentence-transformers truncates at a `model_max_length` among the module's
    tokenizer arguments, else at `max_seq_length`, whatever the tokenizer's own limit (which it uses, capped at
    the model's positions, only without either)."""
    listed = module_list(directory) or []
    folder = directory
    for kind, path in listed:
        if kind == "Transformer":
            if path and (directory / path / "config.json").exists():
                folder = directory / path
            break
    else:
        if listed:  # no Transformer module: nothing of it to read
            return TransformerSettings(folder)
    config: dict = {}
    for name in TRANSFORMER_CONFIG_FILES:
        if (folder / name).exists():
            config = _json(folder / name, "Transformer configuration")
            break
    if not isinstance(config, dict):
        config = {}
    loading = {}
    for new_name, old_name in (("config_kwargs", "config_args"), ("model_kwargs", "model_args"),
                               ("processor_kwargs", "tokenizer_args")):
        value = config.get(new_name, config.get(old_name)) or {}
        if not isinstance(value, dict):
            raise UserError(f"The {new_name} {value!r} in the sentence-transformers configuration of '{folder}' is not "
                            "a JSON object of keyword arguments.")
        # The library never lets a configuration file turn on remote code.
        loading[new_name] = {k: v for k, v in value.items() if k != "trust_remote_code"}
    tokenizer_args = loading["processor_kwargs"]
    length = tokenizer_args.get("model_max_length") if isinstance(tokenizer_args, dict) else None
    if length is None:
        length = config.get("max_seq_length")
    try:
        length = int(length) if length is not None else None
    except (TypeError, ValueError):
        raise UserError(f"The max_seq_length {length!r} in the sentence-transformers configuration of '{folder}' "
                        "is not a number of tokens.") from None
    return TransformerSettings(folder, length if length and length > 0 else None, bool(config.get("do_lower_case")),
                               loading["config_kwargs"], loading["model_kwargs"], loading["processor_kwargs"])


def lowercase_first(tokenizer) -> None:
    """Make a fast tokenizer lowercase every text before its own normalizer, as sentence-transformers does for
    `do_lower_case` (and as it does: not again when its normalizer starts with or is a Lowercase)."""
    from tokenizers import normalizers

    backend = tokenizer.backend_tokenizer
    current = backend.normalizer
    inner = list(current) if isinstance(current, normalizers.Sequence) else [current] if current is not None else []
    if any(isinstance(step, normalizers.Lowercase) for step in inner):
        return
    backend.normalizer = normalizers.Sequence([normalizers.Lowercase(), *inner])


PROMPTS_FILE = "config_sentence_transformers.json"
NO_PROMPT = "none"  # --prompt-name none: no prompt, even where the model names a default one


def read_prompt(directory: Path, name: str | None = None) -> str:
    """The prompt sentence-transformers' `encode(prompt_name=name)` puts before every text; without a name, the
    model's `default_prompt_name` one, or ''. NO_PROMPT: ''."""
    path = directory / PROMPTS_FILE
    config = _json(path, "configuration") if path.exists() else {}
    prompts = config.get("prompts") or {}
    if name == NO_PROMPT:
        return ""
    chosen = name or config.get("default_prompt_name")
    if not chosen:
        return ""
    if chosen not in prompts:
        what = f"The prompt {name!r} is not" if name else f"'{path}' names the default prompt {chosen!r}, which is not"
        raise UserError(f"{what} among the model's prompts ({', '.join(map(repr, prompts)) or 'it has none'}); "
                        f"name one of them, or '{NO_PROMPT}'.")
    return str(prompts[chosen])


def read_truncate_dim(directory: Path) -> int | None:
    """`truncate_dim` of config_sentence_transformers.json: `encode` keeps the first so many dimensions."""
    path = directory / PROMPTS_FILE
    value = (_json(path, "configuration") if path.exists() else {}).get("truncate_dim")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UserError(f"The truncate_dim {value!r} in '{path}' is not a positive number of dimensions.")
    return value


def read_pooling(directory: Path | None, prompt_name: str | None = None) -> Pooling:
    """Pooling and the modules after it, from a sentence-transformers directory (None: a hub model without
    one); else mean pooling. The prompt: `prompt_name` of the model's prompts (NO_PROMPT: none), else its
    default prompt."""
    modules_file = directory / "modules.json" if directory is not None else None
    if modules_file is None or not modules_file.exists():
        if prompt_name and prompt_name != NO_PROMPT:
            raise UserError(f"--prompt-name {prompt_name} needs a sentence-transformers model (modules.json and "
                            f"{PROMPTS_FILE}); '{directory}' is a plain transformers model without prompts.")
        return Pooling()
    modules = module_list(directory) or []
    prompt = read_prompt(directory, prompt_name)
    modes: tuple[str, ...] = ("mean",)
    steps: list[Step] = []
    for kind, path in modules:
        config_file = directory / path / "config.json"
        if kind == "Pooling":
            modes = _pooling_modes(_json(config_file, "pooling configuration") if config_file.exists() else {},
                                   config_file, prompt)
        elif kind == "Dense":
            steps.append(_dense_step(_json(config_file, "Dense configuration"), path, config_file))
        elif kind == "LayerNorm":
            dimension = int(_json(config_file, "LayerNorm configuration")["dimension"])
            steps.append(Step("layernorm", path, dimension, dimension))
        elif kind == "Normalize":
            steps.append(Step("normalize"))
    return Pooling(modes, tuple(steps), "sentence-transformers modules.json", str(directory), prompt,
                   read_truncate_dim(directory))


def module_files(modules: list[dict]) -> list[str]:
    """The files a hub snapshot needs beside modules.json for the modules after the transformer."""
    names = []
    for module in modules:
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        path = str(module.get("path", ""))
        if ".." in path.replace("\\", "/").split("/") or path.startswith(("/", "\\")) or ":" in path:
            continue  # outside the snapshot: read_pooling refuses the model
        if kind in ("Pooling", "Dense", "LayerNorm") and path:
            names.append(f"{path}/config.json")
            if kind != "Pooling":
                names.extend(f"{path}/{weights}" for weights in WEIGHT_FILES)
    return names


def _load_weights(folder: Path) -> dict:
    import torch

    for name in WEIGHT_FILES:
        file = folder / name
        if file.exists():
            if name.endswith(".safetensors"):
                from safetensors.torch import load_file

                return load_file(str(file))
            return torch.load(str(file), map_location="cpu", weights_only=True)
    raise UserError(f"The sentence-transformers module folder '{folder}' has no weights ({' or '.join(WEIGHT_FILES)}).")


def _torch_step(step: Step, directory: Path):
    import torch

    if step.kind == "normalize":
        return None
    weights = _load_weights(directory / step.path)
    if step.kind == "layernorm":
        layer = torch.nn.LayerNorm(step.in_features)
        prefix = "norm."
    else:
        layer = torch.nn.ModuleDict({"linear": torch.nn.Linear(step.in_features, step.out_features, bias=step.bias)})
        if step.residual and step.in_features != step.out_features:
            layer["residual"] = torch.nn.Linear(step.in_features, step.out_features, bias=False)
        prefix = ""
    own = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
    try:
        layer.load_state_dict(own, strict=True)
    except RuntimeError as error:
        raise UserError(f"The weights in '{directory / step.path}' do not fit its configuration: "
                        f"{first_line(error)}.") from None
    return layer


def sentence_head(pooling: Pooling):
    """The head as a torch module (the class is made here: reading a directory's pooling needs no torch)."""
    import torch

    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.modes = pooling.modes
            self.kinds = [s.kind for s in pooling.steps]
            self.residual = [s.residual for s in pooling.steps]
            self.truncate_dim = pooling.truncate_dim
            directory = Path(pooling.directory) if pooling.directory else Path(".")
            self.layers = torch.nn.ModuleList(
                [_torch_step(s, directory) or torch.nn.Identity() for s in pooling.steps])
            self.activations = torch.nn.ModuleList(
                [getattr(torch.nn, s.activation)() if s.kind == "dense" else torch.nn.Identity() for s in pooling.steps])

        def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            vectors = []
            for mode in self.modes:
                if mode == "cls":
                    vectors.append(hidden[:, 0])
                elif mode == "max":
                    vectors.append(hidden.masked_fill(mask == 0, -1e9).max(dim=1).values)
                elif mode in ("mean", "mean_sqrt_len_tokens"):
                    count = mask.sum(dim=1).clamp(min=1e-9)
                    vectors.append((hidden * mask).sum(dim=1) / (count if mode == "mean" else count.sqrt()))
                elif mode == "weightedmean":  # position weights 1, 2, 3... (right padding)
                    positions = torch.cumsum(torch.ones_like(mask), dim=1)
                    weighted = mask * positions
                    vectors.append((hidden * weighted).sum(dim=1) / weighted.sum(dim=1).clamp(min=1e-9))
                else:  # lasttoken: the last real token (right padding)
                    last = (attention_mask.sum(dim=1) - 1).clamp(min=0).to(torch.int64)
                    index = last.view(-1, 1, 1).expand(-1, 1, hidden.shape[-1])
                    vectors.append(torch.gather(hidden, 1, index).squeeze(1))
            vector = vectors[0] if len(vectors) == 1 else torch.cat(vectors, dim=-1)
            for kind, layer, activation, residual in zip(self.kinds, self.layers, self.activations, self.residual):
                if kind == "normalize":
                    vector = torch.nn.functional.normalize(vector, p=2.0, dim=-1)
                elif kind == "layernorm":
                    vector = layer(vector)
                else:
                    out = activation(layer["linear"](vector))
                    if residual:
                        out = out + (layer["residual"](vector) if "residual" in layer else vector)
                    vector = out
            if self.truncate_dim is not None:
                vector = vector[:, : self.truncate_dim]
            return vector

    return Head()


def check_task_modules(directory: Path, task_name: str) -> None:
    """Refuse, for a task other than sentence embeddings, a sentence-transformers directory whose answer comes
    from modules after the transformer (an embedding model's pooling, a cross-encoder's Dense scores): the
    task's head would be missing from its weights, and made up."""
    if task_name == "feature-extraction":
        return
    after = [kind for kind, _ in module_list(directory) or [] if kind != "Transformer"]
    if after:
        raise UserError(f"'{directory}' is a sentence-transformers model whose output comes from its modules after "
                        f"the transformer ({', '.join(dict.fromkeys(after))}), not from a {task_name} head; "
                        "inferforge computes those modules for --task feature-extraction only.")


def cross_encoder_activation(directory: Path | None, config) -> str | None:
    """The torch.nn activation a sentence-transformers CrossEncoder applies to its logits in `predict` (its class
    name), as the library finds it: config_sentence_transformers.json's `activation_fn`, else config.json's
    `sentence_transformers.activation_fn` (4.x-5.x), else its `sbert_ce_default_activation_function` (before 4.0);
    None when the model names none (the library's default: Sigmoid for one output, Identity for several). A path
    outside torch the library ignores too (it imports only torch's without trust_remote_code)."""
    paths = []
    if directory is not None and (directory / PROMPTS_FILE).exists():
        paths.append((_json(directory / PROMPTS_FILE, "configuration") or {}).get("activation_fn"))
    nested = getattr(config, "sentence_transformers", None)
    if isinstance(nested, dict):
        paths.append(nested.get("activation_fn"))
    paths.append(getattr(config, "sbert_ce_default_activation_function", None))
    for path in paths:
        if isinstance(path, str) and path.startswith("torch."):
            return path.rsplit(".", 1)[-1]
    return None


def pair_prompt(directory: Path, task_name: str) -> str:
    """The default prompt a sentence-transformers CrossEncoder directory puts before the first text of every
    pair (`predict` does, from config_sentence_transformers.json), for text-classification; ''. Other tasks
    read character offsets, which a prompt would shift: refused."""
    if task_name == "feature-extraction" or not (directory / "modules.json").exists():
        return ""
    prompt = read_prompt(directory)
    if prompt and task_name != "text-classification":
        raise UserError(f"'{directory / PROMPTS_FILE}' puts the default prompt {prompt!r} before every text, which "
                        f"inferforge does for text-classification and feature-extraction only, not {task_name}.")
    return prompt
