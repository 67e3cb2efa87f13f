"""`python -m spore` is the `spore` command."""

import sys

from spore.cli import main

sys.exit(main())
