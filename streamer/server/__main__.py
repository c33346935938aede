"""``python -m streamer.server serve|stream|watch``: the server commands without the main CLI."""

import sys

from streamer.server.commands import main

sys.exit(main())
