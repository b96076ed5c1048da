"""`python -m room_recovery.demo`: the demo agent's worker (as `room-recovery agent`)."""

import sys

# Imported by the package name, so that job processes unpickle `room_recovery.demo.session`
# objects, not `__main__` ones.
from room_recovery.demo.command import main

sys.exit(main())
