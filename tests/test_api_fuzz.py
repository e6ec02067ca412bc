"""schemathesis against the served OpenAPI document, with an admin token: no request gets a 500."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

from test_api_rig import api_rig  # noqa: F401  (fixture)

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


async def test_schemathesis_finds_no_server_errors(api_rig, tmp_path):
    token = await api_rig.token("admin")
    proc = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS), "run", f"{api_rig.base}/openapi.json",
        "--checks", "not_a_server_error", "--max-examples", "15", "--seed", "5",
        "--header", f"Authorization: Bearer {token}", "--request-timeout", "10", "--warnings", "off",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 240)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-4000:]
    assert "No issues found" in text
    passed = re.search(r"(\d+) generated, (\d+) passed", text)
    assert passed and int(passed.group(1)) > 100, text[-2000:]  # it really exercised the routes
