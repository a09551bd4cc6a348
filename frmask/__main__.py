"""``python -m frmask``: the same as the ``frmask`` command."""

from frmask.cli import main

main(prog_name="frmask")
