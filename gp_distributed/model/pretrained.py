"""A Hugging Face model directory as users have it on disk (`model.backbone_path`): which class, attention
and dtype load it, all decided from config.json and the class before any weight is read.

- Class: transformers' own bare-model class for a `model_type` it knows (EsmModel, LlamaModel, BertModel...).
  The checkpoint's own modeling code (`auto_map` in config.json) runs only when
  `model.trust_remote_code_model` (else the `model.trust_remote_code` shorthand) allows it, and for a Llama-like `model_type` only when
  `model.trust_remote_code_model` itself is true (GENERator ships a modeling file but is a plain Llama).
  Remote code that maps only a head class (NT v2: `AutoModelForMaskedLM`) loads that class and keeps
  its base model.
- Attention (`choose_attention`): from the class's declared support (`_supports_flash_attn`, the
  transformers-4 `_supports_flash_attn_2`, `_supports_sdpa`), never by trying and parsing an error.
- Dtype (`load_dtype`): float32 unless the run trains in bf16, where `auto` keeps bf16 weights in bf16.
- Remote code written for transformers 4 imports `find_pruneable_heads_and_indices`, which transformers 5
  removed; `install_transformers4_shims` puts it back (the transformers-4 function, verbatim in
  behaviour) before any remote code is imported. That is the only shim: anything else such code needs
  fails at import and is reported as one line naming the file to change.
"""

from __future__ import annotations

import copy
import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers.modeling_utils
import transformers.pytorch_utils
from transformers import MODEL_MAPPING, AutoConfig, PretrainedConfig, PreTrainedModel
from transformers.dynamic_module_utils import get_class_from_dynamic_module
from transformers.utils import is_flash_attn_2_available

from gp_distributed.config import ModelConfig
from gp_distributed.errors import ConfigError

# model_type values of decoder-only families whose blocks are named like Llama's
# (layers.N.self_attn.{q,k,v,o}_proj, layers.N.mlp.{gate,up,down}_proj).
LLAMA_LIKE_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "olmo", "olmo2"})

# auto_map keys naming a model class, in order of preference (the bare model first).
_MODEL_KEYS = ("AutoModel", "AutoModelForMaskedLM", "AutoModelForCausalLM")


def _find_pruneable_heads_and_indices(heads: list[int], n_heads: int, head_size: int,
                                      already_pruned_heads: set[int]) -> tuple[set[int], torch.Tensor]:
    """transformers 4's helper (removed in 5): the heads left to prune and the flat indices to keep."""
    mask = torch.ones(n_heads, head_size)
    remaining = set(heads) - already_pruned_heads
    for head in remaining:
        # Heads pruned before shift the index of every later head down by one.
        mask[head - sum(1 for pruned in already_pruned_heads if pruned < head)] = 0
    keep = mask.view(-1).contiguous().eq(1)
    return remaining, torch.arange(len(keep))[keep].long()


def install_transformers4_shims() -> None:
    """Make transformers-4 imports of remote modeling code resolve (idempotent; adds names only where
    transformers lacks them, so a transformers that has them again is left alone)."""
    for module in (transformers.pytorch_utils, transformers.modeling_utils):  # NT v2 imports from either
        if not hasattr(module, "find_pruneable_heads_and_indices"):
            module.find_pruneable_heads_and_indices = _find_pruneable_heads_and_indices  # type: ignore[attr-defined]


def _error(key: str, path: Path, message: str) -> ConfigError:
    return ConfigError("config", key, f"{path}: {message}")


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def raw_config(path: Path) -> dict[str, Any]:
    """config.json of a model directory as plain JSON (nothing imported, no code run)."""
    file = Path(path) / "config.json"
    if not file.is_file():
        raise _error("model.backbone_path", Path(path), "no config.json (not a model directory)")
    try:
        tree = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _error("model.backbone_path", file, f"unreadable: {first_line(error)}") from None
    if not isinstance(tree, dict):
        raise _error("model.backbone_path", file, "not a JSON object")
    return tree


def uses_remote_model_code(model_config: ModelConfig, raw: dict[str, Any]) -> bool:
    """Whether the checkpoint's own modeling code runs (module docstring)."""
    auto_map = raw.get("auto_map") or {}
    if not any(key in auto_map for key in _MODEL_KEYS):
        return False
    if raw.get("model_type") in LLAMA_LIKE_TYPES:
        return model_config.trust_remote_code_model is True
    explicit = model_config.trust_remote_code_model
    return model_config.trust_remote_code if explicit is None else explicit


@dataclass(frozen=True)
class DirectoryModel:
    """What loads a model directory: its config, the class to instantiate, whether that class is the
    checkpoint's own code, and the attention and dtype to load with."""

    path: Path
    config: PretrainedConfig
    model_class: type[PreTrainedModel]
    remote_code: bool
    attn_implementation: str
    dtype: torch.dtype

    def init_kwargs(self) -> dict[str, Any]:
        """Constructor arguments beyond the config: no pooler for classes that take the flag (ESM,
        BERT): GenePheno pools token states itself, and checkpoints of MLM heads hold no pooler."""
        parameters = inspect.signature(self.model_class.__init__).parameters
        return {"add_pooling_layer": False} if "add_pooling_layer" in parameters else {}

    def load(self) -> PreTrainedModel:
        """The bare model with its weights (local files only)."""
        if self.remote_code:
            install_transformers4_shims()
        model = self.model_class.from_pretrained(
            self.path, config=self.config, dtype=self.dtype, attn_implementation=self.attn_implementation,
            local_files_only=True, trust_remote_code=self.remote_code, **self.init_kwargs(),
        )
        return model.base_model

    def build_on_meta(self) -> PreTrainedModel:
        """The bare model with no storage (`torch.device("meta")`): shapes and module names only."""
        config = copy.deepcopy(self.config)  # _from_config writes dtype and attention into the config it gets
        with torch.device("meta"):
            model = self.model_class._from_config(config, attn_implementation=self.attn_implementation,
                                                  dtype=self.dtype, **self.init_kwargs())
        return model.base_model


def _read_config(path: Path, remote: bool) -> PretrainedConfig:
    if remote:
        install_transformers4_shims()
    try:
        return AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=remote)
    except (ValueError, KeyError, OSError, ImportError, AttributeError, TypeError) as error:
        hint = " (set model.trust_remote_code_model=true to run its own code)" if "trust_remote_code" in str(error) else ""
        raise _error("model.backbone_path", path, f"config.json does not load: {first_line(error)}{hint}") from None


def _model_class(path: Path, config: PretrainedConfig, raw: dict[str, Any], remote: bool) -> type[PreTrainedModel]:
    auto_map = raw.get("auto_map") or {}
    if remote:
        key = next(key for key in _MODEL_KEYS if key in auto_map)
        reference = auto_map[key]
        try:
            return get_class_from_dynamic_module(reference, str(path), local_files_only=True)
        except ImportError as error:
            raise _error("model.trust_remote_code_model", path, f"its modeling code {reference} does not import "
                         f"on transformers {transformers.__version__}: {first_line(error)}; edit that file or use "
                         "a checkpoint converted for transformers 5") from None
        except (OSError, AttributeError, ValueError, SyntaxError) as error:
            raise _error("model.trust_remote_code_model", path, f"its modeling code {reference}: "
                         f"{first_line(error)}") from None
    if type(config) in MODEL_MAPPING:
        return MODEL_MAPPING[type(config)]
    model_type = raw.get("model_type")
    if any(key in auto_map for key in _MODEL_KEYS):
        raise _error("model.trust_remote_code_model", path, f"model_type {model_type!r} needs the checkpoint's own "
                     "modeling code: set model.trust_remote_code_model=true (runs code from that directory)")
    raise _error("model.backbone_path", path, f"model_type {model_type!r} is not a model transformers "
                 f"{transformers.__version__} knows, and config.json maps no code of its own (auto_map)")


def choose_attention(model_class: type[PreTrainedModel], requested: str, on_gpu: bool, path: Path) -> str:
    """The attention implementation for `model.attn_implementation=requested` (module docstring).
    A request the class does not declare support for is a `ConfigError` naming the key; flash
    attention is only chosen or accepted on GPU with the flash-attn package importable."""
    name = model_class.__name__
    supports_flash = bool(getattr(model_class, "_supports_flash_attn", False)
                          or getattr(model_class, "_supports_flash_attn_2", False))
    supports_sdpa = bool(getattr(model_class, "_supports_sdpa", False))
    if requested == "auto":
        if on_gpu and supports_flash and is_flash_attn_2_available():
            return "flash_attention_2"
        return "sdpa" if supports_sdpa else "eager"
    key = "model.attn_implementation"
    if requested == "sdpa" and not supports_sdpa:
        raise _error(key, path, f"{name} declares no SDPA support (_supports_sdpa); use auto or eager")
    if requested == "flash_attention_2":
        if not supports_flash:
            raise _error(key, path, f"{name} declares no flash attention support; use auto, sdpa or eager")
        if not on_gpu:
            raise _error(key, path, "flash_attention_2 runs on GPU only (scaling.use_gpu=true); use auto")
        if not is_flash_attn_2_available():
            raise _error(key, path, "flash_attention_2 needs the flash-attn package on a CUDA machine; use auto")
    return requested


def checkpoint_dtype(config: PretrainedConfig) -> torch.dtype | None:
    """The dtype config.json says the weights are stored in (`dtype`, or transformers 4's `torch_dtype`)."""
    value = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if isinstance(value, str):
        value = getattr(torch, value, None)
    return value if isinstance(value, torch.dtype) else None


def load_dtype(model_config: ModelConfig, config: PretrainedConfig, bf16: bool) -> torch.dtype:
    """Weights dtype at load: float32 for fp32 runs (CPU training, prediction); for bf16 runs
    `model.load_dtype`, where auto keeps a bf16 checkpoint in bf16 and loads anything else as float32.
    Loading bf16 weights as bf16 halves the frozen base's memory and the load's peak."""
    if not bf16 or model_config.load_dtype == "float32":
        return torch.float32
    if model_config.load_dtype == "bfloat16":
        return torch.bfloat16
    return torch.bfloat16 if checkpoint_dtype(config) == torch.bfloat16 else torch.float32


def resolve_directory(model_config: ModelConfig, *, on_gpu: bool = False, bf16: bool = False) -> DirectoryModel:
    """How `model_config.backbone_path` loads on this machine; reads config.json (and imports remote
    code only where allowed), no weights. Problems are `ConfigError`s naming the key and the directory."""
    path = model_config.backbone_path
    assert path is not None
    raw = raw_config(path)
    remote = uses_remote_model_code(model_config, raw)
    config = _read_config(path, remote)
    model_class = _model_class(path, config, raw, remote)
    attention = choose_attention(model_class, model_config.attn_implementation, on_gpu, path)
    return DirectoryModel(Path(path), config, model_class, remote, attention, load_dtype(model_config, config, bf16))
