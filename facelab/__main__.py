"""`python -m facelab ...` runs the `facelab` command line."""

import sys

from facelab.cli import main

sys.exit(main())
