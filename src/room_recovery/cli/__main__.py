"""`python -m room_recovery.cli`: the `room-recovery` command (how `up` starts its parts)."""

import sys

from room_recovery.cli import main

sys.exit(main())
