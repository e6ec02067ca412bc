"""ESL event parsing: JSON vs plain events on the same real call (why the adapter asks for JSON).

Run: ``.venv/bin/python bench/esl_formats.py``. Prints events per second for parsing the captured
FreeSWITCH traffic of one answered queue call, framing included (02a plain / 02b json, about 85
events of up to 12 KB each), and the ratio against the baseline measured in the same run: the
plain format through the same codec.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ccserver.pbx.freeswitch.esl_codec import EslParser, parse_event  # noqa: E402

CAPTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "freeswitch-esl"
ROUNDS = 40


def events_per_second(data: bytes) -> float:
    n = 0
    started = time.perf_counter()
    for _ in range(ROUNDS):
        for frame in EslParser().feed(data):
            if frame.content_type.startswith("text/event-"):
                parse_event(frame)
                n += 1
    return n / (time.perf_counter() - started)


def main() -> int:
    plain = events_per_second((CAPTURES / "02a-callcenter-call-plain.rx.raw").read_bytes())
    js = events_per_second((CAPTURES / "02b-callcenter-call-json.rx.raw").read_bytes())
    print(f"{'text/event-plain (baseline)':30s} {plain:10.0f} events/s  x{1.0:5.2f}")
    print(f"{'text/event-json':30s} {js:10.0f} events/s  x{js / plain:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
