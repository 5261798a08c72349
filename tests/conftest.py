"""Test-wide settings.

Tiny models run faster and deterministically on one intra-op thread; with two threads
on a loaded 2-core machine they were measured 20-30x slower (thread contention).
"""

import torch

torch.set_num_threads(1)
