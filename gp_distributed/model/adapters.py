"""LoRA on the backbone (the only peft import).

Adapters are injected in place (`peft.inject_adapter_in_model`): the backbone stays a plain transformers
module, its base weights frozen, only the `lora_A` / `lora_B` matrices trainable. Targets are one regex
that must match a module's full dotted name inside the backbone (`re.fullmatch`), anchored to the
encoder/decoder layers so that nothing outside them (embeddings, the contact head, anything a wrapper
adds) can match; PEFT ships no default for ESM, and a bare `dense` would also match head layers.
BERT-style encoders share ESM's layout; DNABERT-2's own code fuses query, key and value into one `Wqkv`.
"""

from __future__ import annotations

import re

import torch
from peft import LoraConfig as PeftLoraConfig
from peft import (
    get_peft_model_state_dict,
    inject_adapter_in_model,
    set_peft_model_state_dict,
)

from gp_distributed.config import LoraConfig
from gp_distributed.errors import ConfigError, InputError
from gp_distributed.model.backbone import LLAMA_LIKE_TYPES

# Attention projections of every layer: query, key, value and the attention output.
ESM_TARGETS = r"encoder\.layer\.\d+\.attention\.(self\.(query|key|value)|output\.dense)"
BERT_TARGETS = r"encoder\.layer\.\d+\.attention\.(self\.(query|key|value|Wqkv)|output\.dense)"
LLAMA_TARGETS = r"layers\.\d+\.self_attn\.(q_proj|k_proj|v_proj|o_proj)"


def default_target_modules(arch: str) -> str:
    """The default target regex for a backbone `config.model_type`: "esm", "bert" or a Llama-like decoder."""
    if arch == "esm":
        return ESM_TARGETS
    if arch == "bert":
        return BERT_TARGETS
    if arch in LLAMA_LIKE_TYPES:
        return LLAMA_TARGETS
    raise ConfigError("config", "model.lora.target_modules", f"no default LoRA targets for model type {arch!r}: "
                      "give a regex over the backbone's module names")


def lora_target_names(backbone: torch.nn.Module, lora_config: LoraConfig, arch: str) -> list[str]:
    """The linear layers LoRA would wrap: module names that fully match the target regex (the user's,
    else the default for `arch`), as PEFT matches a string target. Works on a meta-device model (no
    weights needed). No match, or a regex that does not compile, is a `ConfigError` naming the key."""
    targets = lora_config.target_modules or default_target_modules(arch)
    try:
        pattern = re.compile(targets)
    except re.error as error:
        raise ConfigError("config", "model.lora.target_modules", f"{targets!r} is not a regex: {error}") from None
    names = [name for name, module in backbone.named_modules()
             if pattern.fullmatch(name) and isinstance(module, torch.nn.Linear)]
    if not names:
        example = next((name for name, module in backbone.named_modules() if isinstance(module, torch.nn.Linear)), "")
        raise ConfigError("config", "model.lora.target_modules", f"{targets!r} matches no linear layer of the "
                          f"{arch} backbone (names look like {example!r}; the regex must match a whole name)")
    return names


def apply_lora(backbone: torch.nn.Module, lora_config: LoraConfig, arch: str) -> torch.nn.Module:
    """Freeze every backbone weight, then (if enabled) inject LoRA adapters; returns the same module.

    rank r, alpha and dropout come from `lora_config`; `lora_config.target_modules` overrides the
    default regex for `arch`. A regex that matches no module is a `ConfigError`.
    """
    backbone.requires_grad_(False)
    if not lora_config.enabled:
        return backbone
    lora_target_names(backbone, lora_config, arch)  # the same check the driver ran, as one line
    targets = lora_config.target_modules or default_target_modules(arch)
    peft_config = PeftLoraConfig(
        r=lora_config.rank,
        lora_alpha=lora_config.alpha,
        lora_dropout=lora_config.dropout,
        target_modules=targets,
        bias="none",
    )
    try:
        return inject_adapter_in_model(peft_config, backbone)
    except ValueError as error:
        raise ConfigError("config", "model.lora.target_modules", f"{targets!r}: {error}") from None


def adapter_state_dict(backbone: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The LoRA weights only, keyed by module path without the adapter name (PEFT's file layout)."""
    return get_peft_model_state_dict(backbone)


def load_adapter_state_dict(backbone: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Copy LoRA weights into `backbone`; keys and shapes must equal `adapter_state_dict(backbone)`'s.

    A missing, unexpected or misshapen entry raises `InputError` naming `source` (where the weights
    came from).
    """
    expected = adapter_state_dict(backbone)
    if set(state) != set(expected):
        missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        raise InputError(source, f"LoRA weights do not fit: missing {missing[:3]}, unexpected {unexpected[:3]}")
    for key, tensor in state.items():
        if tensor.shape != expected[key].shape:
            shapes = f"{tuple(tensor.shape)} != {tuple(expected[key].shape)}"
            raise InputError(source, f"LoRA weight {key} has shape {shapes} (a different rank?)")
    set_peft_model_state_dict(backbone, state)
