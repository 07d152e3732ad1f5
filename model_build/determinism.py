"""Make a training run repeatable: the same seed gives the same weights on the same machine."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator


@contextlib.contextmanager
def deterministic(*, seed: int, threads: int = 1) -> Iterator[None]:
    """Seed python, numpy and torch, insist on deterministic kernels and fix the thread count
    (float sums reduce in a different order with a different count); restore on exit so a
    caller in the same process (a test session, ``modelway up``) keeps its own settings."""
    import numpy as np
    import torch

    previous_threads = torch.get_num_threads()
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous_deterministic)
        torch.set_num_threads(previous_threads)
