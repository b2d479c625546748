"""Running a command on a pseudo-terminal, as a person at a terminal would (progress bars, colours)."""

from __future__ import annotations

import os
import pty
import subprocess


def run_on_terminal(args: list[str]) -> tuple[int, str]:
    """Run a command with stdin, stdout and stderr on a pseudo-terminal; returns (status, output)."""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(args, stdin=follower, stdout=follower, stderr=follower)
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: every writer closed its end
                break
            if not chunk:
                break
            chunks.append(chunk)
        proc.wait(timeout=60)
    finally:
        os.close(leader)
    return proc.returncode, b"".join(chunks).decode("utf-8", "replace")
