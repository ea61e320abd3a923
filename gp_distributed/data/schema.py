"""Names the gene store shares with every reader: split names (index = the split code stored per gene)."""

from __future__ import annotations

SPLIT_NAMES = ("train", "valid", "test")
TRAIN, VALID, TEST = 0, 1, 2
