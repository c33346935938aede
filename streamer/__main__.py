"""`python -m streamer` runs the command line."""

import sys

from streamer.cli import main

sys.exit(main())
