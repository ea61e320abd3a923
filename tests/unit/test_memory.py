"""gp_distributed.train.memory on Linux: the peak follows a real allocation and resets to the current size."""

import sys

import numpy as np
import pytest

from gp_distributed.train.memory import peak_rss_gib, reset_peak_rss

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_peak_rises_with_an_allocation_and_resets_after_it_is_freed() -> None:
    reset_peak_rss()  # the peak so far may lie above today's resident size
    before = peak_rss_gib()
    block = np.ones(2**26)  # 0.5 GiB, touched
    assert peak_rss_gib() >= before + 0.45
    del block
    reset_peak_rss()
    assert peak_rss_gib() < before + 0.25
