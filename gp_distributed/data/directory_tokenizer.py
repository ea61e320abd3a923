"""A tokenizer saved in a model directory (`model.backbone_path`), loaded as a user has it on disk:
local files only, the directory's own tokenizer code only when trusted, and the ways such a load fails
on transformers 5 turned into one `ConfigError` line naming the key to change."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from gp_distributed.config import ModelConfig
from gp_distributed.errors import ConfigError


def trusts_tokenizer_code(model_config: ModelConfig) -> bool:
    """`model.trust_remote_code_tokenizer`, else the `model.trust_remote_code` shorthand."""
    explicit = model_config.trust_remote_code_tokenizer
    return model_config.trust_remote_code if explicit is None else explicit


def load_directory_tokenizer(path: Path, remote_code: bool) -> PreTrainedTokenizerBase:
    """AutoTokenizer over a model directory; a tokenizer that does not load is one `ConfigError` line."""
    key = "model.trust_remote_code_tokenizer"
    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=remote_code)
    except AttributeError as error:
        if "_special_tokens_map" in str(error):
            # transformers 5 keeps special tokens in a dict that PreTrainedTokenizer.__init__ creates.
            raise ConfigError("config", key, f"{path}: its tokenizer code sets special tokens before calling "
                              "super().__init__() (written for transformers 4), which transformers 5 refuses: move "
                              "those assignments after super().__init__() in its tokenization_*.py") from None
        raise ConfigError("config", key, f"{path}: the tokenizer does not load: {error}") from None
    except (ValueError, OSError, ImportError, KeyError, TypeError) as error:
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if "trust_remote_code" in str(error):
            raise ConfigError("config", key, f"{path}: the tokenizer is the directory's own code; set "
                              "model.trust_remote_code_tokenizer=true to run it") from None
        raise ConfigError("config", "model.backbone_path", f"{path}: the tokenizer does not load: {text}") from None
