"""``python -m generator`` runs the spotcheck command line."""

from __future__ import annotations

import sys

from generator.cli import main

sys.exit(main())
