"""``python -m streamer.server``: the `streamer` command line (serve, stream, watch, transcribe)."""

import sys

from streamer.server.commands import main

sys.exit(main())
