"""Run the command line with ``python -m static_gate``."""

import sys

from .cli import main

sys.exit(main())
