"""The offline demo agent: greets with espeak-ng and echoes what it hears; no account needed.

    session  the job (join, guard, voice)   worker  its AgentServer and /health
    voice    speech, tones, utterances      command  `room-recovery agent`

Needs `pip install 'room-recovery[demo]'`.
"""

from ..core.extras import DEMO_MODULES, require_extra

require_extra("demo", *DEMO_MODULES, what="the demo agent")
