"""``python -m devtools.hq``: the reference HQ tool, also reachable as ``ykt hq``."""

import sys

from devtools.hq.cli import main

sys.exit(main())
