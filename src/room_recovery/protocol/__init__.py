"""What the page, the agents and the watchdog say to each other: one definition each.

messages     data messages from the page (room_cleanup, agent_selection); dispatch metadata
room_status  room-recovery's status in a room's metadata (`failed`)
heartbeat    the agent's heartbeat attribute
page         all of it as one JSON object, served to the page in /api/config
"""
