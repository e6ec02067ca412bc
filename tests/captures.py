"""Where the real protocol captures live: ``../shared/fixtures`` beside the repository.

``CCSERVER_FIXTURES`` overrides it (a checkout somewhere else). A missing folder fails loudly:
the captures are the truth the adapters and the simulator are tested against.
"""

import os
from pathlib import Path

FIXTURES = Path(os.environ.get("CCSERVER_FIXTURES", Path(__file__).resolve().parents[2] / "shared" / "fixtures"))
ASTERISK_CAPTURES = FIXTURES / "asterisk-ami"
FREESWITCH_CAPTURES = FIXTURES / "freeswitch-esl"

for _captures in (ASTERISK_CAPTURES, FREESWITCH_CAPTURES):
    if not _captures.is_dir():
        raise RuntimeError(f"protocol captures not found at {_captures}; set CCSERVER_FIXTURES")
