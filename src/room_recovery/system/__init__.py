"""Local operations: run the whole voice system on one machine, and only what it started.

options        what `up` runs and where       parts          the plan and its processes
lifecycle      up, down, restart, detached    status         status and logs
supervisor     start, watch, restart, stop    part           a part's spec, state, process
part_output    a part's output to its log     processes      verified pidfiles, free ports
registrations  your workers' registered names units          systemd units for a deployment
files          private (0600) files           livekit_server the binary and its config
prometheus     the Prometheus of --prometheus
"""
