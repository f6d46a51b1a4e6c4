"""`python -m api`: the `teaser` command, for where its script isn't on PATH."""

import sys

from api.cli import main

sys.exit(main())
