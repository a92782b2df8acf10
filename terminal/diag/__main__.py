import sys

from terminal.diag.cli import main

sys.exit(main())
