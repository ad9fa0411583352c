"""``python -m ingest PATH...`` is ``slm ingest PATH...``."""

import sys

from assistant.cli import main

main(args=["ingest", *sys.argv[1:]], prog_name="slm")
