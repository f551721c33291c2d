"""`python -m ops.dev.services_tool ARGS`, the same as `ops/dev/services ARGS`."""

import sys

from ops.dev.services_tool.cli import main

sys.exit(main())
