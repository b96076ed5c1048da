"""Local operations: run the whole voice system on one machine, and only what it started.

options        what `up` runs and where       parts      the processes, in start order
lifecycle      up, down, restart, detached    status     status and logs
supervisor     start, watch, restart, stop    processes  verified pidfiles, free ports
livekit_server the livekit-server binary and its config
"""
