"""``python -m sync.hq``: the reference HQ tool, also reachable as ``ykt hq``."""

import sys

from sync.hq.cli import main

sys.exit(main())
