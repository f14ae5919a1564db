"""Fixtures for the avatar tests: a small synthetic head and an avatar initialised on it."""

from __future__ import annotations

import pytest
import torch

from avatar_test_head import synthetic_head
from emo_backend.avatar.init import init_avatar_from_head


@pytest.fixture(scope="session")
def head():
    return synthetic_head(num_expressions=3, seed=0)


@pytest.fixture(scope="session")
def avatar(head):
    return init_avatar_from_head(head, 1500, identity=torch.tensor([0.5, -0.3]), seed=0)
