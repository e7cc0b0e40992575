"""`python -m trainer.cli ...`: the `trainer` command without the console script."""

import sys

from trainer.cli.main import main

sys.exit(main())
