"""Backbones: tiny presets run, save/load through `backbone_path` reproduces outputs, LoRA targets the
attention projections only, and the large presets have their published sizes (meta device, no allocation).
"""

from pathlib import Path

import pytest
import torch

from gp_distributed.config import LoraConfig, ModelConfig
from gp_distributed.data.tokenize import build_tokenizer, tokenizer_for
from gp_distributed.errors import ConfigError
from gp_distributed.model.adapters import apply_lora
from gp_distributed.model.backbone import build_backbone, token_states


def _esm_count(vocab: int, d: int, ffn: int, layers: int, heads: int) -> int:
    """EsmModel without pooler: embeddings; per layer 2 LayerNorms, q/k/v/o and a 2-matrix FFN with
    biases; the final LayerNorm; the contact head (one weight per layer x head, one bias)."""
    per_layer = 4 * (d * d + d) + (d * ffn + ffn) + (ffn * d + d) + 2 * 2 * d
    return vocab * d + layers * per_layer + 2 * d + layers * heads + 1


def _llama_count(vocab: int, d: int, ffn: int, layers: int, heads: int, kv_heads: int) -> int:
    """LlamaModel (no LM head): embeddings; per layer q, o (d x d), k, v (d x kv), 3 bias-free MLP
    matrices and 2 RMSNorm weights; the final RMSNorm."""
    kv = kv_heads * (d // heads)
    per_layer = 2 * d * d + 2 * d * kv + 3 * d * ffn + 2 * d
    return vocab * d + layers * per_layer + d


def _ids(tokenizer, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    encoded = tokenizer(texts, padding=True, return_tensors="pt")
    return encoded["input_ids"], encoded["attention_mask"]


@pytest.mark.parametrize(
    ("preset", "alphabet", "kind", "texts"),
    [
        ("tiny-protein", "protein", "masked", ["MKTAYIAKQR", "MKV"]),
        ("tiny-dna", "dna", "causal", ["ACGTACGTAAAAAATTTTTTN", "ACGT"]),
    ],
)
def test_tiny_preset_saves_and_loads_through_backbone_path(
    tmp_path: Path, preset: str, alphabet: str, kind: str, texts: list[str]
) -> None:
    tokenizer = build_tokenizer(alphabet, 6)
    module, hidden, got_kind = build_backbone(ModelConfig(backbone_preset=preset), tokenizer)
    assert (hidden, got_kind) == (64, kind)
    assert module.config._attn_implementation == "sdpa"
    input_ids, attention_mask = _ids(tokenizer, texts)
    module.eval()
    with torch.no_grad():
        states = token_states(module, input_ids, attention_mask)
    assert states.shape == (*input_ids.shape, 64)

    module.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded_config = ModelConfig(backbone_preset=None, backbone_path=tmp_path)
    loaded_tokenizer = tokenizer_for(loaded_config, alphabet, 6)
    loaded, loaded_hidden, loaded_kind = build_backbone(loaded_config, loaded_tokenizer)
    assert (loaded_hidden, loaded_kind) == (64, kind)
    loaded_ids, loaded_mask = _ids(loaded_tokenizer, texts)
    assert torch.equal(loaded_ids, input_ids)
    loaded.eval()
    with torch.no_grad():
        assert torch.equal(token_states(loaded, loaded_ids, loaded_mask), states)


def test_padding_does_not_change_real_token_states() -> None:
    tokenizer = build_tokenizer("protein")
    module, _, _ = build_backbone(ModelConfig(backbone_preset="tiny-protein"), tokenizer)
    module.eval()
    alone_ids, alone_mask = _ids(tokenizer, ["MKV"])
    padded_ids, padded_mask = _ids(tokenizer, ["MKV", "MKTAYIAKQR"])
    with torch.no_grad():
        alone = token_states(module, alone_ids, alone_mask)[0]
        padded = token_states(module, padded_ids, padded_mask)[0, : alone.shape[0]]
    torch.testing.assert_close(padded, alone, rtol=1e-5, atol=1e-5)


def test_backbone_path_without_model_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no config.json"):
        build_backbone(ModelConfig(backbone_preset=None, backbone_path=tmp_path), build_tokenizer("protein"))


@pytest.mark.parametrize(
    ("preset", "alphabet", "expected"),
    [
        (
            "tiny-protein",
            "protein",
            [
                f"encoder.layer.{i}.attention.{m}"
                for i in (0, 1)
                for m in ("self.query", "self.key", "self.value", "output.dense")
            ],
        ),
        (
            "tiny-dna",
            "dna",
            [f"layers.{i}.self_attn.{m}" for i in (0, 1) for m in ("q_proj", "k_proj", "v_proj", "o_proj")],
        ),
    ],
)
def test_default_lora_targets_attention_projections_only(preset: str, alphabet: str, expected: list[str]) -> None:
    module, _, _ = build_backbone(ModelConfig(backbone_preset=preset), build_tokenizer(alphabet, 3))
    adapted = apply_lora(module, LoraConfig(rank=4), module.config.model_type)
    wrapped = sorted(name for name, child in adapted.named_modules() if hasattr(child, "lora_A"))
    assert wrapped == sorted(expected)
    trainable = [name for name, p in adapted.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_A." in name or ".lora_B." in name for name in trainable)


def test_lora_regex_matching_nothing_is_a_config_error() -> None:
    module, _, _ = build_backbone(ModelConfig(backbone_preset="tiny-protein"), build_tokenizer("protein"))
    with pytest.raises(ConfigError, match="model.lora.target_modules"):
        apply_lora(module, LoraConfig(target_modules=r"decoder\.nothing"), "esm")


def test_large_presets_have_published_sizes_without_allocating() -> None:
    dna, protein = build_tokenizer("dna", 6), build_tokenizer("protein")
    with torch.device("meta"):
        generator, hidden, kind = build_backbone(ModelConfig(backbone_preset="generator-1.2b"), dna)
        esm2, _, _ = build_backbone(ModelConfig(backbone_preset="esm2-35m"), protein)
        nt, _, _ = build_backbone(ModelConfig(backbone_preset="nt-500m"), dna)
    assert all(p.device.type == "meta" for p in generator.parameters())
    assert (hidden, kind) == (2048, "causal")

    generator_count = sum(p.numel() for p in generator.parameters())
    assert generator_count == _llama_count(4107, 2048, 5632, 26, 32, 4) == 1_153_564_672
    # GENERator's config gives 1.154e9 without the LM head: the paper's "1.2B" is 3.9 % above it.
    assert abs(generator_count - 1.2e9) / 1.2e9 < 0.04

    esm2_count = sum(p.numel() for p in esm2.parameters())
    assert esm2_count == _esm_count(33, 480, 1920, 12, 20)
    assert abs(esm2_count - 35e6) / 35e6 < 0.05  # "35M" counts the LM head too

    # NT v2's 4096-wide SwiGLU (3 matrices, no bias) stood in for by a 6144-wide GELU FFN (2 matrices).
    assert 3 * 1024 * 4096 == 2 * 1024 * 6144
    nt_count = sum(p.numel() for p in nt.parameters())
    assert nt_count == _esm_count(4107, 1024, 6144, 29, 16)
    assert abs(nt_count - 498e6) / 498e6 < 0.02
