"""The core library: settings, errors, the RoomManager and its one connection to LiveKit.

settings   Settings / load_settings: the spec's environment variables, validated once
errors     the one error hierarchy (RoomRecoveryError and its children)
transport  the owner of livekit-api's session; turns its errors into ours
manager    RoomManager: fetch, ask `rules`, act, report
report     CleanupReport
views      server types → the plain data of `rules`
tokens     one-room tokens for people; signing: reused server API tokens
extras     which optional extra a module needs, said in one line
"""
