"""Pure decisions over plain data, one module per decision; nothing here does I/O.

model      what the rules see: Kind, State, ParticipantView, RoomView, Removal
staleness  which rooms and participants are stale; whom to remove before an agent joins
watch      the watchdog's verdict for one room (ghosts, dispatch, give up)
liveness   whether an agent's heartbeat still changes (HeartbeatTracker)
restart    the supervisor's backoff for a part that died
retry      the page's delays between retries in fresh rooms
"""
