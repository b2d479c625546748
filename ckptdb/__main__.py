"""`python -m ckptdb` is the `ckptdb` command."""

from ckptdb.cli import main

main(prog_name="ckptdb")
