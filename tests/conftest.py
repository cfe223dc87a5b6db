"""Suite-wide settings: one intra-op thread (tiny tensors gain nothing from more, and a loaded 2-core machine
loses a lot), headless matplotlib."""
import os

os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

torch.set_num_threads(1)
