"""Child-process scripts for the reliability tests, and the deterministic content they share.

The scripts run as `sys.executable tests/helpers/<script>.py ...` (a real process the test can
SIGKILL); `content.make_checkpoint(id, version)` lets the parent recompute exactly what a child saved.
"""
