"""The one map between image values (0..255) and network values ([-1, 1] or [0, 1])."""

from __future__ import annotations

import numpy as np
import pytest

from advseg_sdk.pixels import from_network_range, to_network_range, to_uint8


def test_ends_map_to_the_range_ends_and_back():
    u8 = np.arange(256, dtype=np.uint8)
    for rng in ((-1.0, 1.0), (0.0, 1.0)):
        x = to_network_range(u8, rng)
        assert x.dtype == np.float32 and x[0] == rng[0] and x[-1] == rng[1]
        assert (to_uint8(x, rng) == u8).all()
        assert np.abs(from_network_range(x, rng) - u8).max() < 1e-3


def test_to_uint8_clips_and_rounds_like_the_trainers_sample_images():
    torch = pytest.importorskip("torch")
    x = np.linspace(-1.2, 1.2, 1001, dtype=np.float32)
    want = ((torch.from_numpy(x).clamp(-1, 1) + 1) * 127.5).round().byte().numpy()
    assert (to_uint8(x) == want).all()


def test_a_falling_range_is_refused():
    with pytest.raises(ValueError, match="must rise"):
        to_network_range(np.zeros(2, np.uint8), (1.0, -1.0))
