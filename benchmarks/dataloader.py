"""Training dataloader throughput: images/s with mosaic + hyp.scratch-low augmentation.

    python benchmarks/dataloader.py                       # 640 px, batch 16, workers 0 and 2, generated 640-px set
    python benchmarks/dataloader.py --data builtin --imgsz 256

Prints one line per worker count: steady-state images/s (after the first batch, which includes worker start-up)
and the time to the first batch.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from yolobone.data.datasets import check_dataset, create_dataloader
from yolobone.data.synthetic import ensure_builtin_dataset, make_detection_dataset

HYP = Path(__file__).resolve().parents[1] / "configs" / "hyp" / "hyp.scratch-low.yaml"


def measure(train_path: str, nc: int, imgsz: int, batch: int, workers: int, batches: int,
            cache: str | None = None) -> tuple[float, float]:
    """(images/s after the first batch, seconds to the first batch)."""
    loader, _ = create_dataloader(train_path, imgsz, batch, 32, hyp=HYP, augment=True, shuffle=True, nc=nc,
                                  workers=workers, cache=cache, prefix="")
    t0 = time.perf_counter()
    n_images, first, it = 0, None, iter(loader)
    for k in range(batches + 1):
        try:
            ims, *_ = next(it)
        except StopIteration:  # short dataset: start the next epoch
            it = iter(loader)
            ims, *_ = next(it)
        if k == 0:
            first = time.perf_counter()
        else:
            n_images += len(ims)
    return n_images / (time.perf_counter() - first), first - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="generated",
                    help="'generated' (a synthetic set of 640-px images), 'builtin', or a data YAML")
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--batches", type=int, default=10, help="timed batches per setting (after one warm-up batch)")
    ap.add_argument("--n-images", type=int, default=96, help="images in the generated set")
    ap.add_argument("--cache", choices=["ram", "disk"], default=None, help="also time with this image cache")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        if args.data == "generated":
            t = time.perf_counter()
            yaml_path = make_detection_dataset(Path(tmp) / "shapes640", n_train=args.n_images, n_val=1, imgsz=640)
            print(f"generated {args.n_images} images of 640 px in {time.perf_counter() - t:.1f} s")
        elif args.data == "builtin":
            yaml_path = ensure_builtin_dataset()
        else:
            yaml_path = Path(args.data)
        data = check_dataset(yaml_path)
        print(f"data {data['train']}, imgsz {args.imgsz}, batch {args.batch}, mosaic + hyp.scratch-low, "
              f"{args.batches} timed batches")
        for cache in [None] + ([args.cache] if args.cache else []):
            for w in args.workers:
                rate, first = measure(data["train"], data["nc"], args.imgsz, args.batch, w, args.batches, cache)
                print(f"workers {w}, cache {cache}: {rate:.1f} images/s ({args.batch / rate * 1000:.0f} ms/batch), "
                      f"first batch after {first:.2f} s")


if __name__ == "__main__":
    main()
