"""`python -m weightscape.forkserver SOCKET`: the server process a job starts (weightscape.forkserver.connect)."""

import sys
from pathlib import Path

from weightscape.forkserver.server import serve

serve(Path(sys.argv[1]))
