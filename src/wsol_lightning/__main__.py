"""``python -m wsol_lightning``: the same CLI as ``wsol`` and ``lightning``."""

import sys

from wsol_lightning.cli import main

if __name__ == "__main__":
    sys.exit(main())
