"""Our train.py, with its training batches read from a folder of saved batches instead of our data pipeline.

    python benchmarks/replay_train.py --batches runs/batches-seed0 --cfg configs/yolov5n.yaml --data data.yaml ...

The pipeline-swap experiment (benchmarks/learning_parity.py --ours-batches yolov5): the folder holds the batches
YOLOv5 v7.0's own dataloader gave, epoch by epoch (benchmarks/dump_yolov5_batches.py). Everything else is ours as
train.py runs it: the model, its initialisation, the loss, the optimizer, warmup, EMA, validation on our val loader.
Our own loader is still built (its dataset gives AutoAnchor and the label statistics) but never iterated.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, Iterator, List, Optional, Sequence, Tuple

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class ReplayLoader:
    """Stands in for the trainer's train loader: the saved batches of the epoch set_epoch() names."""

    def __init__(self, folder: Path, real: Any):
        self.folder, self.real, self.epoch = Path(folder), real, 0
        self.dataset, self.num_workers, self.generator = real.dataset, 0, None
        first = self._batches(0)
        if len(first) != len(real):
            raise SystemExit(f"{folder}: {len(first)} saved batches an epoch, our loader has {len(real)}; "
                             f"same data, --batch-size and --imgsz on both sides?")
        self.n = len(first)

    def _batches(self, epoch: int) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        path = self.folder / f"e{epoch:03d}.pt"
        if not path.is_file():
            raise SystemExit(f"{path}: no saved batches for epoch {epoch} (dump as many epochs as you train)")
        return torch.load(path, weights_only=True)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.real.set_epoch(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor, List[str], List[None]]]:
        for imgs, targets in self._batches(self.epoch):
            yield imgs, targets, [""] * len(imgs), [None] * len(imgs)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--batches" not in args:
        raise SystemExit("replay_train.py: --batches FOLDER is required (then train.py's own flags)")
    k = args.index("--batches")
    folder = Path(args[k + 1])
    del args[k:k + 2]
    from yolobone.cli.train import SearchOptions, parse_opt
    from yolobone.engine.train import train
    search = {f.name for f in dataclasses.fields(SearchOptions)}  # train.py's search flags: not training options
    options = {k: v for k, v in vars(parse_opt(args)).items() if v is not None and k not in search}

    def swap(trainer: Any) -> None:
        trainer.train_loader = ReplayLoader(folder, trainer.train_loader)
        print(f"replay_train: training batches from {folder} ({trainer.train_loader.n} an epoch)", flush=True)

    train(options, callbacks={"on_train_start": swap})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
