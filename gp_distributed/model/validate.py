"""Checks of the backbone that can run before Ray starts (`gp train`) or before weights are read
(`gp predict` / `evaluate` / `explain` / `embed`), each failure one `ConfigError` line naming the
config key and the directory:

- the tokenizer and config.json load (remote code only where allowed), and a model class resolves;
- the model builds on the meta device (no weights read, no memory), with the chosen attention;
- for a directory, the safetensors headers hold every backbone weight at the shape the class expects
  (a checkpoint whose own modeling code is needed, read by transformers' class, would otherwise start
  from random weights with a warning only);
- the tokenizer fits the embedding table; LoRA targets resolve to at least one linear layer;
- a window (`data.max_seq_len_tokens`, special tokens included) fits a learned position table
  (an `IndexError` mid-forward otherwise); rotary / ALiBi models beyond their trained context warn;
- eager attention on long windows warns with the memory its score matrices take.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from gp_distributed.config import Alphabet, GPConfig, resolved_precision
from gp_distributed.data.store import open_store
from gp_distributed.data.tokenize import tokenizer_for
from gp_distributed.errors import ConfigError
from gp_distributed.model.adapters import lora_target_names
from gp_distributed.model.backbone import build_backbone
from gp_distributed.model.pretrained import DirectoryModel, resolve_directory

EAGER_WARN_TOKENS = 1024  # windows longer than this make eager attention's T^2 scores dominate memory
# Backbone parameters no token state depends on: their absence from a checkpoint is harmless.
_UNUSED_PARAMETERS = ("contact_head.", "pooler.")


@dataclass(frozen=True)
class BackboneCheck:
    """What the checks found: the class, attention and dtype that will load, the LoRA targets, the
    usable positions (None: no learned table), and warnings to show the user once."""

    source: str
    model_class: str
    remote_code: bool
    attn_implementation: str
    dtype: torch.dtype
    lora_targets: int
    positions: int | None
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        code = "its own code" if self.remote_code else "transformers"
        positions = f", {self.positions} positions" if self.positions is not None else ""
        return (f"backbone {self.source}: {self.model_class} ({code}), attention {self.attn_implementation}, "
                f"weights {str(self.dtype).removeprefix('torch.')}, {self.lora_targets} LoRA targets{positions}")


def _safetensors_header(file: Path) -> dict[str, list[int]]:
    """Tensor name -> shape from a safetensors file's JSON header (the tensor data is not read)."""
    with file.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    return {name: entry["shape"] for name, entry in header.items() if name != "__metadata__"}


def checkpoint_shapes(path: Path) -> dict[str, list[int]] | None:
    """Every tensor's shape in a directory's safetensors weights (sharded with an index, or one file);
    None when it has no safetensors (pytorch_model.bin: not checked, reading it means unpickling)."""
    index = path / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    elif (path / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        return None
    shapes: dict[str, list[int]] = {}
    for name in files:
        try:
            shapes.update(_safetensors_header(path / name))
        except (OSError, ValueError, struct.error, KeyError) as error:
            raise ConfigError("config", "model.backbone_path", f"{path / name}: unreadable safetensors ({error})") from None
    return shapes


def _loaded_names(module: PreTrainedModel, shapes: dict[str, list[int]]) -> dict[str, list[int] | None]:
    """Checkpoint tensors under the parameter names transformers loads them into: its own renamings
    (e.g. ESM's saved `LayerNorm.gamma` -> `LayerNorm.weight`), the base-model prefix dropped. Shape None:
    a converter reshapes the tensor (fused experts...), so only its presence is checked."""
    from transformers.conversion_mapping import get_model_conversion_mapping
    from transformers.core_model_loading import WeightRenaming, rename_source_key

    transforms = get_model_conversion_mapping(module)
    renamings = [t for t in transforms if isinstance(t, WeightRenaming)]
    converters = [t for t in transforms if not isinstance(t, WeightRenaming)]
    meta_state = dict(module.state_dict())
    prefix = getattr(module, "base_model_prefix", "")
    loaded: dict[str, list[int] | None] = {}
    for key, shape in shapes.items():
        name, converted = rename_source_key(key, renamings, converters, prefix, meta_state)
        loaded[name] = None if converted is not None else shape
    return loaded


def _check_weights_fit(directory: DirectoryModel, module: PreTrainedModel) -> None:
    shapes = checkpoint_shapes(directory.path)
    if shapes is None:
        return
    loaded = _loaded_names(module, shapes)
    missing, misshapen = [], []
    for name, parameter in module.named_parameters():
        if name.startswith(_UNUSED_PARAMETERS):
            continue
        if name not in loaded:
            missing.append(name)
        elif loaded[name] is not None and list(loaded[name]) != list(parameter.shape):
            misshapen.append(f"{name} {tuple(loaded[name])} != {tuple(parameter.shape)}")
    if not missing and not misshapen:
        return
    problem = (f"{len(missing)} backbone weights are missing from its safetensors (e.g. {missing[0]})" if missing
               else f"weights do not fit {directory.model_class.__name__} (e.g. {misshapen[0]})")
    auto_map = getattr(directory.config, "auto_map", None) or {}
    if not directory.remote_code and auto_map:
        raise ConfigError("config", "model.trust_remote_code_model", f"{directory.path}: {problem}: "
                          "the checkpoint ships its own modeling code (auto_map); set model.trust_remote_code_model=true")
    raise ConfigError("config", "model.backbone_path", f"{directory.path}: {problem} "
                      f"for {directory.model_class.__name__}")


def _position_capacity(module: nn.Module) -> int | None:
    """Tokens a window may hold under a learned absolute position table; None without one. ESM-style
    tables start position ids after the padding index (1026 rows -> 1024 tokens for ESM-2)."""
    table = next((child for name, child in module.named_modules()
                  if name.endswith("position_embeddings") and isinstance(child, nn.Embedding)), None)
    if table is None:
        return None
    offset = table.padding_idx + 1 if table.padding_idx is not None else 0
    return table.num_embeddings - offset


def _attention_warning(config: GPConfig, module: PreTrainedModel, attention: str, bf16: bool) -> list[str]:
    tokens = config.data.max_seq_len_tokens
    if attention != "eager" or tokens <= EAGER_WARN_TOKENS:
        return []
    windows = config.train.micro_batch_size * (config.data.max_windows_per_gene
                                               if config.data.window_strategy == "all" else 1)
    heads = int(getattr(module.config, "num_attention_heads", 1))
    layers = int(getattr(module.config, "num_hidden_layers", 1))
    per_layer = windows * heads * tokens**2 * (2 if bf16 else 4)
    message = (f"eager attention (the model declares no SDPA / flash support) on {tokens}-token windows: "
               f"{per_layer / 2**30:.2f} GiB of attention scores per layer ({windows} windows x {heads} heads x "
               f"{tokens}^2), up to {layers * per_layer / 2**30:.1f} GiB kept for backward over {layers} layers; "
               "shorten data.max_seq_len_tokens or lower train.micro_batch_size if workers run out of memory")
    return [message]


def check_backbone(config: GPConfig, tokenizer: PreTrainedTokenizerBase, *, training: bool) -> BackboneCheck:
    """Every check of the module docstring for `config.model` with `tokenizer`, on the meta device.
    `training`: for the training devices (GPU attention, bf16 weights), else for CPU prediction."""
    model_config = config.model
    on_gpu = training and config.scaling.use_gpu
    bf16 = training and resolved_precision(config) == "bf16"
    if model_config.backbone_path is None:
        with torch.device("meta"):
            module, _, _ = build_backbone(model_config, tokenizer, on_gpu=on_gpu, bf16=bf16)
        source, remote, dtype = f"preset {model_config.backbone_preset}", False, torch.float32
    else:
        directory = resolve_directory(model_config, on_gpu=on_gpu, bf16=bf16)
        module = directory.build_on_meta()
        _check_weights_fit(directory, module)
        source, remote, dtype = str(directory.path), directory.remote_code, directory.dtype
    where = model_config.backbone_path or "config"
    n_embeddings = module.get_input_embeddings().num_embeddings
    if len(tokenizer) > n_embeddings:
        raise ConfigError("config", "model.backbone_path" if model_config.backbone_path else "model.backbone_preset",
                          f"{where}: the tokenizer has {len(tokenizer)} tokens, the backbone embeds {n_embeddings}")
    targets = lora_target_names(module, model_config.lora, module.config.model_type) if model_config.lora.enabled else []
    capacity = _position_capacity(module)
    tokens = config.data.max_seq_len_tokens
    if capacity is not None and tokens > capacity:
        raise ConfigError("config", "data.max_seq_len_tokens", f"{tokens} tokens per window (special tokens "
                          f"included) exceed the {capacity} positions of {where}; set data.max_seq_len_tokens<={capacity}")
    warnings = _attention_warning(config, module, module.config._attn_implementation, bf16)
    trained_context = getattr(module.config, "max_position_embeddings", None)
    if capacity is None and trained_context and tokens > trained_context:
        warnings.append(f"data.max_seq_len_tokens={tokens} is beyond the {trained_context} positions {where} "
                        "was trained on (max_position_embeddings): quality past them is untested")
    return BackboneCheck(source, type(module).__name__, remote, module.config._attn_implementation, dtype,
                         len(targets), capacity, warnings)


def training_alphabet(config: GPConfig) -> Alphabet:
    """The alphabet training will read: the store's, or what `gp train` would ingest when it is missing."""
    store = config.data.store
    if store is not None and Path(store).exists():
        return open_store(store).alphabet  # type: ignore[return-value]  # the store validates its alphabet
    return config.ingest.alphabet


def validate_training_backbone(config: GPConfig) -> BackboneCheck:
    """`check_backbone` on the driver before training starts (paths already absolute)."""
    tokenizer = tokenizer_for(config.model, training_alphabet(config), config.data.kmer_size)
    return check_backbone(config, tokenizer, training=True)
