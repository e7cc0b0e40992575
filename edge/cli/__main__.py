"""`python -m edge.cli ...`: the `edge` command without the console script (tests, `edge run` children)."""

import sys

from edge.cli.main import main

sys.exit(main())
