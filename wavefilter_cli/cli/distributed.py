"""Data-parallel runs under ``torchrun``: rank detection, sharding, and gathering results on rank 0.

``torchrun`` (``python -m torch.distributed.run``) starts one process per
worker and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``
and ``MASTER_PORT``. ``wavefilter batch`` and ``wavefilter bench`` read
them: each rank takes every WORLD_SIZE-th item (round-robin), and rank 0
gathers the results and is the only rank that writes to stdout. The process
group uses gloo on the CPU and nccl on CUDA. Without these variables a
command runs as one process and nothing here starts.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Sequence, TypeVar

from wavefilter_cli.errors import UsageError

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Ranks:
    """This process's place in a data-parallel run: a single process is rank 0 of a world of 1."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only rank that writes results."""
        return self.rank == 0

    def shard(self, items: Sequence[T]) -> list[T]:
        """This rank's items: every ``world_size``-th one, starting at ``rank``."""
        return list(items[self.rank :: self.world_size])


def ranks_from_environment(environ: dict[str, str] | None = None) -> Ranks:
    """Read ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` as torchrun sets them; a single process when absent.

    Raises UsageError (exit 2) for a value that is not a whole number or a
    rank outside the world.
    """
    environ = os.environ if environ is None else environ
    if "WORLD_SIZE" not in environ:
        return Ranks()
    values = {}
    rank = environ.get("RANK", "0")
    # A single-machine launch numbers local ranks like global ones.
    for name, default in (("RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_RANK", rank)):
        text = environ.get(name, default)
        if not text.isdigit():
            raise UsageError(f"{name}={text!r} is invalid: launch with torchrun, which sets it to a whole number")
        values[name] = int(text)
    if values["WORLD_SIZE"] < 1 or values["RANK"] >= values["WORLD_SIZE"]:
        raise UsageError(
            f"RANK={values['RANK']} with WORLD_SIZE={values['WORLD_SIZE']} is invalid: launch with torchrun, "
            "which numbers ranks 0 to WORLD_SIZE - 1"
        )
    return Ranks(values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"])


def worker_device(configured: str, ranks: Ranks) -> str:
    """Return this rank's device: ``cuda:LOCAL_RANK`` when ``configured`` is auto or cuda and a GPU exists."""
    import torch

    if ranks.distributed and configured in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{ranks.local_rank % torch.cuda.device_count()}"
    return configured


class ProcessGroup:
    """The torch.distributed group of a data-parallel run, as a context manager; does nothing for one process.

    ``backend`` is nccl when ``device`` is a CUDA device and gloo otherwise.
    """

    def __init__(self, ranks: Ranks, device: str) -> None:
        self.ranks = ranks
        self.device = device
        self.started = False

    def __enter__(self) -> "ProcessGroup":
        if not self.ranks.distributed:
            return self
        import torch
        import torch.distributed as dist

        backend = "nccl" if self.device.startswith("cuda") else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(torch.device(self.device))
        dist.init_process_group(backend=backend)
        self.started = True
        logger.info("rank %d of %d joined the %s process group", self.ranks.rank, self.ranks.world_size, backend)
        return self

    def __exit__(self, *exc_info) -> None:
        if self.started:
            import torch.distributed as dist

            dist.destroy_process_group()
            self.started = False

    def broadcast(self, value: Any) -> Any:
        """Return rank 0's ``value`` on every rank (picklable objects)."""
        if not self.started:
            return value
        import torch.distributed as dist

        box = [value if self.ranks.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> list[Any] | None:
        """Collect every rank's ``value`` on rank 0, in rank order; other ranks get None."""
        if not self.started:
            return [value]
        import torch.distributed as dist

        gathered = [None] * self.ranks.world_size if self.ranks.is_main else None
        dist.gather_object(value, gathered, dst=0)
        return gathered


def interleave(shards: Sequence[Sequence[T]]) -> list[T]:
    """Undo round-robin sharding: item i of the input came from shard i % len(shards), position i // len(shards)."""
    total = sum(len(shard) for shard in shards)
    count = len(shards)
    return [shards[index % count][index // count] for index in range(total)]
