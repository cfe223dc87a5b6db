"""DistributedDataParallel set-up from torchrun's environment (RANK, LOCAL_RANK, WORLD_SIZE)."""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.nn as nn

from yolobone.utils.logging import LOGGER


@dataclass(frozen=True)
class DistInfo:
    """This process's place in a DDP run; rank -1 means a single-process run."""

    rank: int = -1
    local_rank: int = -1
    world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.rank != -1

    @property
    def is_main(self) -> bool:
        """Rank 0 (or the only process): the one that validates, logs and writes files."""
        return self.rank in (-1, 0)


def dist_from_env() -> DistInfo:
    """Read torchrun's variables; without them this is a single-process run."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return DistInfo()
    return DistInfo(rank=int(os.environ["RANK"]), local_rank=int(os.environ.get("LOCAL_RANK", "0")),
                    world_size=int(os.environ["WORLD_SIZE"]))


def init_process_group(info: DistInfo, device: torch.device) -> torch.device:
    """Join the process group (nccl on CUDA, gloo on CPU); returns this process's device."""
    if not info.distributed:
        return device
    if device.type == "cuda":
        if torch.cuda.device_count() <= info.local_rank:
            raise ValueError(f"DDP: LOCAL_RANK {info.local_rank} but only {torch.cuda.device_count()} CUDA devices")
        torch.cuda.set_device(info.local_rank)
        device = torch.device("cuda", info.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                                timeout=timedelta(seconds=10800))
    LOGGER.info(f"DDP: rank {info.rank}/{info.world_size} on {device}")
    return device


def wrap_ddp(model: nn.Module, info: DistInfo, device: torch.device, sync_bn: bool, probe: int = 64) -> nn.Module:
    """DistributedDataParallel (with SyncBatchNorm when asked and on CUDA); probe: image size for the
    unused-parameter check (a multiple of the model's largest stride)."""
    if not info.distributed:
        return model
    if sync_bn:
        if device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model).to(device)
            LOGGER.info("Using SyncBatchNorm()")
        else:
            LOGGER.warning("--sync-bn ignored: SyncBatchNorm needs CUDA devices")
    ids = [info.local_rank] if device.type == "cuda" else None
    unused = unused_parameters(model, probe)
    if unused:
        LOGGER.info(f"DDP: {len(unused)} trainable tensors get no gradient (e.g. {unused[0]}); "
                    f"find_unused_parameters=True")
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, output_device=ids[0] if ids else None,
                                               find_unused_parameters=bool(unused))


def unused_parameters(model: nn.Module, size: int) -> list:
    """Names of trainable parameters that an eval-mode forward/backward on a zero image leaves without gradient
    (DDP must then look for unused parameters every step). BatchNorm statistics are untouched in eval mode."""
    was_training = model.training
    p0 = next(model.parameters())
    model.eval()
    try:
        out = model(torch.zeros(1, 3, size, size, device=p0.device))
        maps = out[1] if isinstance(out, tuple) else out
        sum(m.float().sum() for m in maps).backward()
        return [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)


def broadcast_bool(flag: bool, info: DistInfo) -> bool:
    """Rank 0's value of flag on every rank."""
    if not info.distributed:
        return flag
    box = [flag]
    dist.broadcast_object_list(box, 0)
    return bool(box[0])


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def zero_first(info: DistInfo):
    """Rank 0 runs the block first (e.g. scanning labels and writing the cache), the others after it."""
    if info.distributed and info.rank != 0:
        dist.barrier()
    yield
    if info.distributed and info.rank == 0:
        dist.barrier()
