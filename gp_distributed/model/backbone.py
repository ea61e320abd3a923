"""The genomic / protein language model that turns token windows into token states (the only transformers
import in model code).

A backbone is either a preset built in-process, random-initialised, from a transformers config (tests,
benchmarks, shape-faithful stand-ins for the published models), or a local Hugging Face directory.
Either way it is the bare encoder/decoder (no LM head): `module(input_ids=..., attention_mask=...)`
gives `last_hidden_state` (W, T, d). Attention is `model.attn_implementation` as `pretrained.choose_attention`
resolves it (auto: flash attention on GPU where installed and declared, else SDPA, else eager); how a
directory loads (class, remote code, dtype) is `model/pretrained.py`'s.

Presets (vocabulary size and pad id come from the tokenizer):
- "tiny-protein": ESM-2 layout, 2 layers, d=64, 4 heads, FFN 128 (tests);
- "esm2-35m": facebook/esm2_t12_35M_UR50D shape: 12 layers, d=480, 20 heads, FFN 1920, rotary;
- "tiny-dna": Llama decoder, 2 layers, d=64, 4 heads (2 key/value heads), FFN 128 (tests);
- "nt-500m": nucleotide-transformer-v2-500m-multi-species shape: ESM layout, 29 layers, d=1024,
  16 heads, rotary. NT v2's FFN is a bias-free SwiGLU of width 4096, which transformers' native ESM lacks
  (the checkpoint needs its remote code); the preset uses a GELU FFN of width 6144, which has the same
  weight count and matmul FLOPs. Real NT weights load only through `backbone_path` + `trust_remote_code`;
- "generator-1.2b": GenerTeam/GENERator-eukaryote-1.2b-base shape (its config.json): Llama, 26 layers,
  d=2048, 32 heads, 4 key/value heads, FFN 5632, rope theta 5e5. 1.154e9 parameters without the LM
  head (the paper's "1.2B" rounds up).
Preset weights are a pure function of the preset and the tokenizer (fixed seed), so a checkpoint that
leaves the frozen base out restores exactly. Building a large preset allocates its weights; count
parameters under `with torch.device("meta"):`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from transformers import (
    EsmConfig,
    EsmModel,
    LlamaConfig,
    LlamaModel,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from gp_distributed.config import ModelConfig
from gp_distributed.errors import ConfigError
from gp_distributed.model.pretrained import (
    LLAMA_LIKE_TYPES,
    choose_attention,
    resolve_directory,
)

BackboneKind = Literal["masked", "causal"]

PRESET_SEED = 0  # presets are random-initialised from this seed, whatever the training seed

_ESM_SHAPES: dict[str, dict[str, int | float | bool]] = {
    "tiny-protein": dict(
        num_hidden_layers=2, hidden_size=64, num_attention_heads=4, intermediate_size=128,
        max_position_embeddings=1026, layer_norm_eps=1e-5, token_dropout=True,
    ),
    "esm2-35m": dict(
        num_hidden_layers=12, hidden_size=480, num_attention_heads=20, intermediate_size=1920,
        max_position_embeddings=1026, layer_norm_eps=1e-5, token_dropout=True,
    ),
    "nt-500m": dict(
        num_hidden_layers=29, hidden_size=1024, num_attention_heads=16, intermediate_size=6144,
        max_position_embeddings=2050, layer_norm_eps=1e-12, token_dropout=False,
    ),
}  # fmt: skip
_LLAMA_SHAPES: dict[str, dict[str, int | float]] = {
    "tiny-dna": dict(
        num_hidden_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=128, max_position_embeddings=4096, rope_theta=500000.0,
    ),
    "generator-1.2b": dict(
        num_hidden_layers=26, hidden_size=2048, num_attention_heads=32, num_key_value_heads=4,
        intermediate_size=5632, max_position_embeddings=16384, rope_theta=500000.0,
    ),
}  # fmt: skip


def preset_config(preset: str, tokenizer: PreTrainedTokenizerBase,
                  attn_implementation: str = "sdpa") -> PretrainedConfig:
    """The transformers config of `preset`, with the tokenizer's vocabulary size and special ids."""
    if preset in _ESM_SHAPES:
        return EsmConfig(
            vocab_size=len(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
            mask_token_id=tokenizer.mask_token_id,
            position_embedding_type="rotary",
            emb_layer_norm_before=False,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
            attn_implementation=attn_implementation,
            **_ESM_SHAPES[preset],
        )
    if preset in _LLAMA_SHAPES:
        return LlamaConfig(
            vocab_size=len(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.cls_token_id,
            eos_token_id=tokenizer.eos_token_id,
            rms_norm_eps=1e-5,
            tie_word_embeddings=False,
            attn_implementation=attn_implementation,
            **_LLAMA_SHAPES[preset],
        )
    raise ConfigError("config", "model.backbone_preset", f"unknown preset {preset!r}")


def _build_preset(preset: str, tokenizer: PreTrainedTokenizerBase, attn_implementation: str,
                  on_gpu: bool) -> PreTrainedModel:
    """Random weights from a fixed seed, on a forked RNG: the frozen base of a preset is the same in
    every process and every run (checkpoints leave it out), and the caller's RNG streams are untouched."""
    model_class = EsmModel if preset in _ESM_SHAPES else LlamaModel
    attention = choose_attention(model_class, attn_implementation, on_gpu, Path(f"preset {preset}"))
    config = preset_config(preset, tokenizer, attention)
    with torch.random.fork_rng():
        torch.manual_seed(PRESET_SEED)
        if isinstance(config, EsmConfig):
            return EsmModel(config, add_pooling_layer=False)
        return LlamaModel(config)


def backbone_kind(module: PreTrainedModel) -> BackboneKind:
    """Whether the backbone is a decoder-only language model ("causal") or a bidirectional encoder ("masked")."""
    config = module.config
    architectures = getattr(config, "architectures", None) or []
    is_causal = config.model_type in LLAMA_LIKE_TYPES or any(a.endswith("ForCausalLM") for a in architectures)
    return "causal" if is_causal else "masked"


def build_backbone(
    model_config: ModelConfig, tokenizer: PreTrainedTokenizerBase, *, on_gpu: bool = False, bf16: bool = False
) -> tuple[PreTrainedModel, int, BackboneKind]:
    """(module, hidden size d, kind) for the configured backbone; all its parameters trainable as built.

    `on_gpu` (the module will run on CUDA) lets `attn_implementation=auto` pick flash attention; `bf16`
    (the run trains in bf16) lets `load_dtype` keep bf16 weights in bf16. Prediction passes neither.

    The module maps input_ids (W, T) and attention_mask (W, T) to `last_hidden_state` (W, T, d). The
    tokenizer must fit the backbone (every token id < the embedding size), else `ConfigError`. With
    `model_config.gradient_checkpointing` the layers recompute activations in backward (non-reentrant).
    """
    if model_config.backbone_preset is not None:
        module = _build_preset(model_config.backbone_preset, tokenizer, model_config.attn_implementation, on_gpu)
    else:
        module = resolve_directory(model_config, on_gpu=on_gpu, bf16=bf16).load()
    n_embeddings = module.get_input_embeddings().num_embeddings
    if len(tokenizer) > n_embeddings:
        message = f"the tokenizer has {len(tokenizer)} tokens, the backbone embeds {n_embeddings}"
        raise ConfigError("config", "model", message)
    module.config.use_cache = False  # decoders: no KV cache, we run full windows once
    if model_config.gradient_checkpointing:
        module.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    return module, int(module.config.hidden_size), backbone_kind(module)


def token_states(module: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Last hidden states (W, T, d) of the backbone for token ids (W, T) and mask (W, T)."""
    return module(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
