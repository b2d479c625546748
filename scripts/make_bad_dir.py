"""Build an echo checkpoint directory damaged the way real ones are, with the expected import outcome.

Usage:
    python scripts/make_bad_dir.py OUT_DIR [--valid-source DIR] [--seed N]
    (prints the expected mapping, relative path -> category, as JSON on stdout)

Importable (no side effects at import time):

    from make_bad_dir import make_bad_dir, expected_for
    expected = make_bad_dir(tmp_path / "bad")                    # recursive outcome, all entries
    top_only = expected_for(expected, recursive=False)           # without --recursive

Layout (A, B, C, D, X, Y stand for uuid4 ids; the checkpoints come from `gen_echo.build_checkpoint`,
or A-D are copied byte for byte from the first four valid `*.json` files of `valid_source`, sorted
by name, kept under their own names, with distinct ids):

    {A}.json                 imported    valid
    {B}.json                 imported    valid
    {C}.json                 imported    valid
    renamed.json             unchanged   byte-identical copy of {A}.json under another name
    newer-echo-version.json  imported    valid, from a newer echo: extra top-level fields
                                         (parent_checkpoint_id, label, tags, branch, run_id) after
                                         the nine known ones, and a `+08:00` created_at
    {X}.json.tmp             skipped     leftover complete temp file (the rename never happened)
    {Y}.json.tmp             skipped     leftover truncated temp file
    empty.json               invalid     0 bytes (no fsync before rename + power loss)
    truncated.json           invalid     the first half of a valid checkpoint (still UTF-8)
    top-level-array.json     invalid     valid JSON, but `[ {checkpoint} ]`
    missing-id.json          invalid     valid JSON object without the `id` field
    wrong-enum-case.json     invalid     `"interrupt_type": "BeforeNode"` (serde wants `beforenode`)
    negative-step-count.json invalid     `"step_count": -1` (a usize)
    not-utf8.json            invalid     `résumé` written as Latin-1 (byte 0xE9): not UTF-8
    notes.txt                skipped     not a `.json` file
    archive/{D}.json         imported    valid, only here               (--recursive only)
    archive/{B}.json         unchanged   byte-identical copy of {B}.json (--recursive only)
    archive/conflict.json    conflict    id C, different content        (--recursive only)

Expected outcome semantics (what an importer of this directory must report):
- Files are processed in sorted relative-path order: the top level first, then each subdirectory,
  names sorted by code point within each directory (`processing_order_key`).
- Names ending in `.json.tmp`, and names not ending in `.json`, are "skipped" (never parsed).
- A `.json` file that `Checkpoint.from_json` rejects (InvalidCheckpointError) is "invalid".
- For valid files, the first occurrence of an id is "imported"; a later file with the same id and
  identical content is "unchanged"; a later file with the same id and different content is
  "conflict". (The copies here are byte-identical and the conflict differs in step_count,
  created_at and state, so "identical" means the same whether compared as bytes or as parsed JSON.)
- Entries under `archive/` only count with --recursive; without it the importer does not look into
  subdirectories at all, and those entries are absent from its outcome (`expected_for(...,
  recursive=False)`). Subdirectory files come after all top-level ones, so dropping them changes no
  top-level category. The Rust `FileCheckpointStore::list()` sees exactly the top-level "imported"
  and "unchanged" files.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import gen_echo

from ckptdb.errors import InvalidCheckpointError
from ckptdb.model import Checkpoint, InterruptType, Timestamp

CATEGORIES = ("imported", "unchanged", "conflict", "invalid", "skipped")
ARCHIVE = "archive"

Kind = Literal["checkpoint", "invalid", "skipped"]


@dataclass(frozen=True, slots=True)
class _Entry:
    data: bytes
    kind: Kind
    checkpoint_id: str | None = None


def processing_order_key(relative_path: str) -> tuple[bool, str, str]:
    """Sort key for the processing order: top level first, then each subdirectory, names sorted."""
    directory, _, name = relative_path.rpartition("/")
    return (directory != "", directory, name)


def expected_for(expected: dict[str, str], *, recursive: bool) -> dict[str, str]:
    """The outcome an importer reports with or without --recursive (subdirectory entries dropped)."""
    if recursive:
        return dict(expected)
    return {path: category for path, category in expected.items() if "/" not in path}


def _categorize(entries: dict[str, _Entry]) -> dict[str, str]:
    """Apply the documented rules in processing order (first occurrence of an id wins)."""
    first_content: dict[str, bytes] = {}
    result: dict[str, str] = {}
    for rel in sorted(entries, key=processing_order_key):
        entry = entries[rel]
        if entry.kind != "checkpoint" or entry.checkpoint_id is None:
            result[rel] = entry.kind
        elif entry.checkpoint_id not in first_content:
            first_content[entry.checkpoint_id] = entry.data
            result[rel] = "imported"
        else:
            result[rel] = "unchanged" if first_content[entry.checkpoint_id] == entry.data else "conflict"
    return result


def _replace_top_level(text: str, key: str, value_json: str | None) -> str:
    """Replace (or, with None, remove) one top-level scalar field of a pretty echo file."""
    pattern = re.compile(r'(\n  "' + re.escape(key) + r'": )([^\n]*?)(,?)\n')
    match = pattern.search(text)
    if match is None:
        raise ValueError(f"no top-level {key!r} line")
    if value_json is None:
        if match.group(3):  # not the last field: drop the line
            return text[: match.start()] + "\n" + text[match.end() :]
        raise ValueError(f"cannot remove the last field {key!r}")
    return text[: match.start()] + match.group(1) + value_json + match.group(3) + "\n" + text[match.end() :]


def _source_checkpoints(valid_source: Path, count: int) -> list[tuple[str, bytes, Checkpoint]]:
    """The first `count` valid files of `valid_source` (sorted names) with distinct ids."""
    chosen: list[tuple[str, bytes, Checkpoint]] = []
    ids: set[str] = set()
    for path in sorted(valid_source.iterdir()):
        if not path.name.endswith(".json") or not path.is_file():
            continue
        data = path.read_bytes()
        try:
            checkpoint = Checkpoint.from_json(data, source=str(path))
        except InvalidCheckpointError:
            continue
        if checkpoint.id in ids:
            continue
        ids.add(checkpoint.id)
        chosen.append((path.name, data, checkpoint))
        if len(chosen) == count:
            return chosen
    raise ValueError(f"{valid_source} holds fewer than {count} valid checkpoint files with distinct ids")


def _build_entries(valid_source: Path | None, seed: int) -> dict[str, _Entry]:
    rng = gen_echo.make_rng(f"make_bad_dir/{seed}")  # ids distinct from gen_echo.generate(seed=...)'s

    def fresh(interrupt_type: InterruptType | None = None) -> Checkpoint:
        return gen_echo.build_checkpoint(rng, interrupt_type=interrupt_type)

    def encoded(checkpoint: Checkpoint) -> bytes:
        return checkpoint.to_json().encode("utf-8")

    # The four valid checkpoints: A, B, C at the top level, D only in archive/.
    valid: list[tuple[str, bytes, Checkpoint]]
    if valid_source is not None:
        valid = _source_checkpoints(valid_source, 4)
    else:
        made = [fresh() for _ in range(4)]
        valid = [(f"{cp.id}.json", encoded(cp), cp) for cp in made]
    (name_a, data_a, cp_a), (name_b, data_b, cp_b), (name_c, data_c, cp_c), (name_d, data_d, cp_d) = valid

    entries: dict[str, _Entry] = {}

    def add(rel: str, data: bytes, kind: Kind, checkpoint_id: str | None = None) -> None:
        if rel in entries:
            raise ValueError(f"two entries named {rel!r} (source file names collide with fixed names)")
        entries[rel] = _Entry(data, kind, checkpoint_id)

    add(name_a, data_a, "checkpoint", cp_a.id)
    add(name_b, data_b, "checkpoint", cp_b.id)
    add(name_c, data_c, "checkpoint", cp_c.id)
    add("renamed.json", data_a, "checkpoint", cp_a.id)

    newer = fresh()
    newer.created_at = Timestamp(newer.created_at.unix_nanos, offset_minutes=8 * 60)
    newer.extra = {
        "parent_checkpoint_id": cp_a.id,
        "label": "before deploy 🚀",
        "tags": ["prod", "审批", "v0.2"],
        "branch": "main",
        "run_id": gen_echo.new_id(rng),
    }
    add("newer-echo-version.json", encoded(newer), "checkpoint", newer.id)

    complete_tmp = fresh()
    add(f"{complete_tmp.id}.json.tmp", encoded(complete_tmp), "skipped")
    truncated_tmp = fresh()
    add(f"{truncated_tmp.id}.json.tmp", truncated_tmp.to_json()[:300].encode(), "skipped")

    add("empty.json", b"", "invalid")
    cut = fresh().to_json()
    add("truncated.json", cut[: len(cut) // 2].encode(), "invalid")  # cut on a character, mid-document
    add("top-level-array.json", b"[\n" + encoded(fresh()) + b"\n]", "invalid")
    add("missing-id.json", _replace_top_level(fresh().to_json(), "id", None).encode(), "invalid")
    wrong_case = _replace_top_level(
        fresh(InterruptType.BEFORE_NODE).to_json(), "interrupt_type", '"BeforeNode"'
    )
    add("wrong-enum-case.json", wrong_case.encode(), "invalid")
    negative = _replace_top_level(fresh().to_json(), "step_count", "-1")
    add("negative-step-count.json", negative.encode(), "invalid")
    latin = fresh()
    latin.graph_name = "résumé-screening"
    add("not-utf8.json", encoded(latin).replace("é".encode(), b"\xe9"), "invalid")
    add(
        "notes.txt",
        b"2026-11-20 moved old runs to archive/ -- ops\nresume run-42 after the deploy freeze\n",
        "skipped",
    )

    add(f"{ARCHIVE}/{name_d}", data_d, "checkpoint", cp_d.id)
    add(f"{ARCHIVE}/{name_b}", data_b, "checkpoint", cp_b.id)
    conflict = Checkpoint.from_json(data_c)
    conflict.step_count = conflict.step_count + 1
    conflict.created_at = Timestamp(conflict.created_at.unix_nanos + 1_234_567_891)
    conflict.state_snapshot = {"edited_by_hand": True, "previous": conflict.state_snapshot}
    add(f"{ARCHIVE}/conflict.json", encoded(conflict), "checkpoint", conflict.id)
    return entries


def make_bad_dir(root: Path, valid_source: Path | None = None, *, seed: int = 0) -> dict[str, str]:
    """Create the damaged directory at `root` (missing or empty); return relative path -> category.

    The mapping is the --recursive outcome, in processing order; see the module docstring for the
    layout and the rules, and `expected_for` for the outcome without --recursive.
    """
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise FileExistsError(f"{root} is not empty: the expected outcome would not hold")
    entries = _build_entries(valid_source, seed)
    for rel, entry in entries.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(entry.data)
    expected = _categorize(entries)
    top_level = _categorize({rel: e for rel, e in entries.items() if "/" not in rel})
    assert top_level == expected_for(expected, recursive=False), "archive/ must not change top-level results"
    return expected


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build a realistically damaged echo checkpoint directory.")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument(
        "--valid-source",
        type=Path,
        default=None,
        help="copy the valid checkpoints from this directory (e.g. real fixtures)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    expected = make_bad_dir(args.out_dir, args.valid_source, seed=args.seed)
    json.dump(expected, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write(os.linesep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
