"""Where the real protocol captures live: ``tests/fixtures/`` in the repository.

They are byte-exact traffic of a real Asterisk 22.10.1 and a real FreeSWITCH 1.11
(``tests/fixtures/README.md``). ``CCSERVER_FIXTURES`` points the tests at another copy of the same
folders. A missing folder fails loudly: the captures are the truth the adapters and the simulators
are tested against.
"""

import os
from pathlib import Path

FIXTURES = Path(os.environ.get("CCSERVER_FIXTURES") or Path(__file__).resolve().parent / "fixtures")
ASTERISK_CAPTURES = FIXTURES / "asterisk-ami"
FREESWITCH_CAPTURES = FIXTURES / "freeswitch-esl"
#: ccserver's own AMI / FastAGI and ESL / outbound-socket traffic through its shipped dialplans
ASTERISK_CCSERVER_CAPTURES = FIXTURES / "asterisk-ccserver"
FREESWITCH_CCSERVER_CAPTURES = FIXTURES / "freeswitch-ccserver"

for _captures in (ASTERISK_CAPTURES, FREESWITCH_CAPTURES, ASTERISK_CCSERVER_CAPTURES,
                  FREESWITCH_CCSERVER_CAPTURES):
    if not _captures.is_dir():
        raise RuntimeError(f"protocol captures not found at {_captures}; set CCSERVER_FIXTURES")
