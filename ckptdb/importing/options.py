"""What an import is asked to do: its options, and the progress callback it reports to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ckptdb.errors import CkptdbError

OnConflict = Literal["skip", "replace", "fail"]
ON_CONFLICT_CHOICES: tuple[OnConflict, ...] = ("skip", "replace", "fail")
DEFAULT_BATCH_SIZE = 1000

ProgressCallback = Callable[[str, int, int], None]
"""Called as (phase, files done, files in total); phase is "validating" or "importing"."""


@dataclass(frozen=True, slots=True)
class ImportOptions:
    recursive: bool = False
    dry_run: bool = False
    strict: bool = False
    on_conflict: OnConflict = "skip"
    batch_size: int = DEFAULT_BATCH_SIZE
    parallel: bool = True
    """Parse big imports in a helper process (see `ckptdb.helper_process.helper_pool`; forked on
    Linux, spawned elsewhere, where a script must then guard its entry point with
    `if __name__ == "__main__":`)."""

    def __post_init__(self) -> None:
        if self.on_conflict not in ON_CONFLICT_CHOICES:
            choices = ", ".join(ON_CONFLICT_CHOICES)
            raise CkptdbError(f"on_conflict must be one of {choices}, got {self.on_conflict!r}")
        if self.batch_size < 1:
            raise CkptdbError(f"batch size must be 1 or more, got {self.batch_size}")

    def to_json(self) -> dict[str, Any]:
        return {
            "recursive": self.recursive,
            "dry_run": self.dry_run,
            "strict": self.strict,
            "on_conflict": self.on_conflict,
            "batch_size": self.batch_size,
        }
