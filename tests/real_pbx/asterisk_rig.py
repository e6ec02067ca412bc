"""A real Asterisk, ccserver as an admin runs it, and SIPp phones: the pieces of tests/real_pbx.

``CCSERVER_REAL_ASTERISK`` is one URL (README "Testing against a real PBX")::

    ami://ADMIN:SECRET@127.0.0.1:5038?sip=127.0.0.1:5060&include_dir=/etc/asterisk/ccserver-test

* ``ADMIN:SECRET@host:port``: an AMI user of that Asterisk with the ``command`` write class. The
  suite uses it only to reload what it wrote (``dialplan reload``, ``module reload
  res_pjsip.so``, ``manager reload``), to read the spool directory and to hang up what a failed
  test left; ccserver itself logs in as the shipped least-privilege user.
* ``sip``: the PJSIP UDP transport SIPp sends to (the carrier's INVITEs, the phones' REGISTERs).
* ``include_dir``: a folder the Asterisk user can read and the suite writes, pulled into the
  running configuration by three ``#tryinclude`` lines (``extensions.conf``, ``pjsip.conf``,
  ``manager.conf``). The suite writes there the shipped ``dialplans/asterisk/extensions.conf`` and
  the shipped AMI user (steps 1 and 2 of README "Connecting a real Asterisk", as written), a
  carrier context that sends DIDs in with ``Goto`` (step 1's own example), and the PJSIP
  endpoints of the carrier and of the agents' phones.

Everything listens on loopback; every secret is generated per session and never printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from urllib.parse import parse_qs, unquote, urlsplit

import aiohttp
import asyncpg
from rig import free_port

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
NODE = "pbx1"
#: AMI user the shipped dialplans/asterisk/manager.conf defines
CCSERVER_AMI_USER = "ccserver"
#: the DID the suite calls (any DID reaches the shipped flow ``main``: ivr.routes ``*``)
DID = "5551000"
#: PJSIP endpoints the suite defines: the carrier whose context is [ccserver-inbound] (README
#: step 1's recommended wiring), and one that keeps its own context and Goto's in (step 1's example)
TRUNK = "carrier"
GOTO_TRUNK = "carrier-goto"
GOTO_CONTEXT = "from-carrier"
PHONES = ("1001", "1002", "1003")


class RealAsteriskError(Exception):
    """CCSERVER_REAL_ASTERISK is malformed, or the Asterisk it names does not do what is asked."""


def _address(text: str, what: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise RealAsteriskError(f"CCSERVER_REAL_ASTERISK: {what} must be host:port, got {text!r}")
    return host, int(port)


@dataclass(frozen=True)
class RealAsterisk:
    """Where the running Asterisk is and how the suite reaches it (from CCSERVER_REAL_ASTERISK)."""

    ami_host: str
    ami_port: int
    admin_user: str
    admin_secret: str = field(repr=False)
    sip_host: str
    sip_port: int
    include_dir: Path

    @classmethod
    def from_env(cls, value: str) -> RealAsterisk:
        """Parse the variable; a bad value names the part that is wrong (never the secret)."""
        url = urlsplit(value)
        if url.scheme != "ami":
            raise RealAsteriskError("CCSERVER_REAL_ASTERISK: must start with ami:// (README: Testing against a real PBX)")
        if not url.username or url.password is None:
            raise RealAsteriskError("CCSERVER_REAL_ASTERISK: the admin AMI user and secret are missing (ami://USER:SECRET@host:port)")
        if url.hostname is None or url.port is None:
            raise RealAsteriskError("CCSERVER_REAL_ASTERISK: the AMI host:port is missing")
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        for key in ("sip", "include_dir"):
            if key not in query:
                raise RealAsteriskError(f"CCSERVER_REAL_ASTERISK: the query parameter {key}= is missing")
        sip_host, sip_port = _address(query["sip"], "sip")
        include_dir = Path(query["include_dir"])
        if not include_dir.is_dir() or not os.access(include_dir, os.W_OK):
            raise RealAsteriskError(f"CCSERVER_REAL_ASTERISK: include_dir {include_dir} is not a writable folder")
        return cls(url.hostname, url.port, unquote(url.username), unquote(url.password), sip_host, sip_port,
                   include_dir)


class AdminAmi:
    """The suite's own AMI session (the admin user): plain line splitting, independent of
    ccserver's AMI codec, so what it reports is a second opinion. Keeps every event it receives
    (``events``) while it is open."""

    def __init__(self, pbx: RealAsterisk) -> None:
        self._pbx = pbx
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._waiting: dict[str, asyncio.Future[tuple[dict[str, str], list[str]]]] = {}
        self._ids = 0
        self.events: list[dict[str, str]] = []

    async def __aenter__(self) -> AdminAmi:
        reader, self._writer = await asyncio.open_connection(self._pbx.ami_host, self._pbx.ami_port)
        await reader.readline()  # "Asterisk Call Manager/x.y.z"
        self._reader_task = asyncio.create_task(self._read(reader))
        reply = await self.action("Login", Username=self._pbx.admin_user, Secret=self._pbx.admin_secret)
        if reply.get("Response") != "Success":
            raise RealAsteriskError(f"CCSERVER_REAL_ASTERISK: admin AMI login refused: {reply.get('Message')}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        headers: dict[str, str] = {}
        output: list[str] = []
        while line := await reader.readline():
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            if text:
                key, _, val = text.partition(": ")
                if key == "Output":  # Asterisk 14+: one "Output:" header per line of a Command
                    output.append(val)
                else:
                    headers[key] = val
                continue
            waiter = self._waiting.pop(headers.get("ActionID", ""), None) if "Response" in headers else None
            if waiter is not None:
                waiter.set_result((headers, output))
            elif "Event" in headers:
                self.events.append(headers)
            headers, output = {}, []

    async def action(self, name: str, **headers: str) -> dict[str, str]:
        """Send an action and return its response's headers."""
        return (await self._send(name, headers))[0]

    async def _send(self, name: str, headers: dict[str, str]) -> tuple[dict[str, str], list[str]]:
        assert self._writer is not None
        self._ids += 1
        action_id = f"real-pbx-{self._ids}"
        self._waiting[action_id] = asyncio.get_running_loop().create_future()
        lines = [f"Action: {name}", f"ActionID: {action_id}", *(f"{k}: {v}" for k, v in headers.items())]
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await self._writer.drain()
        async with asyncio.timeout(10):
            return await self._waiting[action_id]

    async def command(self, text: str) -> str:
        """Run a CLI command (AMI ``Command``) and return its output."""
        reply, output = await self._send("Command", {"Command": text})
        if reply.get("Response") != "Success":
            raise RealAsteriskError(f"`{text}` failed: {reply.get('Message')}")
        return "\n".join(output)

    async def until_event(self, what: str, match, timeout: float = 20.0) -> dict[str, str]:
        """The first event (seen since this session opened) for which ``match`` is true."""
        deadline = time.monotonic() + timeout
        while True:
            for e in self.events:
                if match(e):
                    return e
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} from the Asterisk in {timeout} s")
            await asyncio.sleep(0.05)


def _shipped(name: str) -> str:
    return (REPO / "dialplans" / "asterisk" / name).read_text()


def dialplan_for(agi_port: int) -> str:
    """The shipped extensions.conf with CC_NODE and CC_AGI set as README step 1 says, plus the
    carrier context of step 1's example."""
    text, n_node = re.subn(r"(?m)^CC_NODE=.*$", f"CC_NODE={NODE}", _shipped("extensions.conf"))
    text, n_agi = re.subn(r"(?m)^CC_AGI=.*$", f"CC_AGI=agi://127.0.0.1:{agi_port}", text)
    assert n_node == n_agi == 1, "dialplans/asterisk/extensions.conf no longer sets CC_NODE / CC_AGI in [globals]"
    return text + (
        f"\n; written by tests/real_pbx: a carrier context that keeps its own name (README step 1)\n"
        f"[{GOTO_CONTEXT}]\n"
        "exten => _[+0-9A-Za-z].,1,Goto(ccserver-inbound,${EXTEN},1)\n"
    )


def manager_user(secret: str) -> str:
    """The shipped AMI user (its section only: the [general] of manager.conf is the site's) with
    the generated secret in place of the placeholder."""
    text = _shipped("manager.conf")
    start = text.index(f"[{CCSERVER_AMI_USER}]")
    user, n = re.subn(r"(?m)^secret\s*=.*$", f"secret = {secret}", text[start:])
    assert n == 1, "dialplans/asterisk/manager.conf: the ccserver user has no secret line"
    return user


def endpoints(sip_host: str, far_end_port: int) -> str:
    """PJSIP endpoints: the two carrier trunks (caller id from P-Asserted-Identity, as carriers
    send it; calls out through ``carrier``, the shipped CC_TRUNK, reach ``far_end_port``) and the
    agents' phones (registering, one contact each). DTMF by SIP INFO keeps the digits independent
    of RTP timing; media stays on loopback."""
    common = ("type=endpoint\ndisallow=all\nallow=ulaw\ndirect_media=no\ndtmf_mode=info\n"
              f"media_address={sip_host}\nbind_rtp_to_media_address=yes\nrtp_timeout=0\n")
    parts = ["; written by tests/real_pbx (regenerated every session)\n"]
    for name, context in ((TRUNK, "ccserver-inbound"), (GOTO_TRUNK, GOTO_CONTEXT)):
        parts.append(f"[{name}]\n{common}context={context}\ntrust_id_inbound=yes\naors={name}\n"
                     f"[{name}]\ntype=aor\ncontact=sip:{name}@{sip_host}:{far_end_port}\n")
    for phone in PHONES:
        parts.append(f"[{phone}]\n{common}context=ccserver-test-phones\naors={phone}\n"
                     f"[{phone}]\ntype=aor\nmax_contacts=1\nremove_existing=yes\n")
    return "\n".join(parts)


@dataclass
class Site:
    """What the suite loaded into the Asterisk for this session."""

    pbx: RealAsterisk
    agi_port: int
    ami_secret: str = field(repr=False)
    recording_root: str
    #: where calls sent out through the carrier trunk arrive (a transfer's far end)
    far_end_port: int


async def load_site(pbx: RealAsterisk, agi_port: int) -> Site:
    """Write the shipped dialplan, the shipped AMI user and the test endpoints into include_dir
    and make the running Asterisk load them."""
    secret = secrets.token_urlsafe(24)
    far_end_port = free_port()
    (pbx.include_dir / "extensions.conf").write_text(dialplan_for(agi_port))
    (pbx.include_dir / "manager.conf").write_text(manager_user(secret))
    (pbx.include_dir / "pjsip.conf").write_text(endpoints(pbx.sip_host, far_end_port))
    async with AdminAmi(pbx) as ami:
        await ami.command("dialplan reload")
        await ami.command("module reload res_pjsip.so")
        await ami.command("manager reload")
        shown = await ami.command("dialplan show ccserver-inbound")
        if "ccserver-inbound" not in shown or "There is no existence" in shown:
            raise RealAsteriskError(
                f"the Asterisk did not load {pbx.include_dir}/extensions.conf: is it #tryinclude'd from "
                f"extensions.conf? `dialplan show ccserver-inbound` says: {shown.strip()[:300]}")
        if CCSERVER_AMI_USER not in await ami.command(f"manager show user {CCSERVER_AMI_USER}"):
            raise RealAsteriskError(f"the Asterisk did not load {pbx.include_dir}/manager.conf (#tryinclude it)")
        if TRUNK not in await ami.command(f"pjsip show endpoint {TRUNK}"):
            raise RealAsteriskError(f"the Asterisk did not load {pbx.include_dir}/pjsip.conf (#tryinclude it)")
        settings = await ami.command("core show settings")
    spool = re.search(r"Spool directory:\s*(\S+)", settings)
    if spool is None:
        raise RealAsteriskError("`core show settings` shows no spool directory")
    # MixMonitor writes a relative file name under <astspooldir>/monitor (app_mixmonitor.c)
    return Site(pbx, agi_port, secret, f"{spool.group(1)}/monitor", far_end_port)


async def clear_channels(pbx: RealAsterisk) -> None:
    """Hang up whatever a test left on the Asterisk and wait until no channel is left."""
    async with AdminAmi(pbx) as ami:
        await ami.command("channel request hangup all")
        deadline = time.monotonic() + 10
        while "0 active channels" not in await ami.command("core show channels count"):
            if time.monotonic() > deadline:
                raise AssertionError("channels still up 10 s after `channel request hangup all`")
            await asyncio.sleep(0.1)


# ---------------------------------------------------------------------------------------- SIPp


class Sipp:
    """One SIPp process running a scenario of tests/real_pbx/sipp/ on loopback."""

    def __init__(self, scenario: str, log_dir: Path, *args: str) -> None:
        self.scenario = HERE / "sipp" / scenario
        self.log_dir = log_dir
        self.args = args
        self.proc: asyncio.subprocess.Process | None = None
        self.name = f"{scenario.removesuffix('.xml')}-{secrets.token_hex(3)}"

    async def start(self) -> Sipp:
        # the audio the scenarios stream (rtp_stream, relative to SIPp's working folder): one
        # second of G.711 mu-law silence, looped
        audio = self.log_dir / "phone-audio.ulaw"
        if not audio.exists():
            audio.write_bytes(b"\xff" * 8000)
        log = open(self.log_dir / f"{self.name}.log", "wb")  # noqa: SIM115 - closed with the process
        self.proc = await asyncio.create_subprocess_exec(
            "sipp", "-sf", str(self.scenario), "-i", "127.0.0.1", "-mi", "127.0.0.1",
            "-mp", str(free_port()), "-nostdin", "-trace_err",
            "-error_file", str(self.log_dir / f"{self.name}.errors"), *self.args,
            stdout=log, stderr=asyncio.subprocess.STDOUT, cwd=self.log_dir)
        log.close()
        return self

    async def wait(self, timeout: float) -> int:
        """SIPp's exit status (0: every call as scripted) within ``timeout`` seconds."""
        assert self.proc is not None
        try:
            async with asyncio.timeout(timeout):
                return await self.proc.wait()
        except TimeoutError:
            raise AssertionError(f"SIPp {self.name} still running after {timeout} s; {self.errors()}") from None

    def errors(self) -> str:
        path = self.log_dir / f"{self.name}.errors"
        return path.read_text()[-2000:] if path.exists() else "(no SIPp error file)"

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self.proc.wait()
            if self.proc.returncode is None:
                self.proc.kill()
                await self.proc.wait()


#: a scenario's "_ms" delay that never comes (the scenario skips that step)
NEVER = -1


def _set(**milliseconds: int) -> tuple[str, ...]:
    """SIPp ``-set`` arguments for the scenarios' delay variables."""
    return tuple(a for name, value in milliseconds.items() for a in ("-set", name, str(value)))


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


class Phones:
    """The agents' phones of one test: SIPp processes answering (or not) for PJSIP endpoints."""

    def __init__(self, site: Site, log_dir: Path) -> None:
        self._site = site
        self._log_dir = log_dir
        self._running: list[Sipp] = []

    async def phone(self, number: str, *, answers: bool = True, ring_seconds: float = 1.0, calls: int = 1,
                    hold_after: float | None = None, hold_for: float = 0.0) -> Sipp:
        """Register ``number`` with its contact on a new SIPp that answers after ``ring_seconds``
        (or never answers: it rings until the PBX cancels), and puts the caller on hold
        ``hold_after`` seconds after answering, for ``hold_for`` seconds."""
        port = free_port()
        scenario = "ast_agent_answers.xml" if answers else "ast_agent_never_answers.xml"
        extra = (_set(ring_ms=_ms(ring_seconds), hold_after_ms=NEVER if hold_after is None else _ms(hold_after),
                      hold_ms=_ms(hold_for)) if answers else ())
        uas = await Sipp(scenario, self._log_dir, "-p", str(port), "-m", str(calls), *extra).start()
        self._running.append(uas)
        pbx = self._site.pbx
        reg = await Sipp("ast_register.xml", self._log_dir, "-p", str(free_port()), "-m", "1",
                         "-key", "user", number, "-key", "contact_port", str(port),
                         f"{pbx.sip_host}:{pbx.sip_port}").start()
        assert await reg.wait(10) == 0, f"phone {number} could not register: {reg.errors()}"
        return uas

    async def far_end(self) -> Sipp:
        """The party a transfer dials through the carrier trunk: answers one call at once."""
        uas = await Sipp("ast_agent_answers.xml", self._log_dir, "-p", str(self._site.far_end_port), "-m", "1",
                         *_set(ring_ms=0, hold_after_ms=NEVER, hold_ms=0)).start()
        self._running.append(uas)
        return uas

    async def close(self) -> None:
        for p in self._running:
            await p.stop()


async def carrier_call(site: Site, log_dir: Path, *, caller: str, hold_seconds: float,
                       digit: str | None = None, digit_after: float = 1.0, trunk: str = TRUNK,
                       did: str = DID) -> Sipp:
    """Start one carrier call into ``did``: answered by the PBX, sends ``digit`` (SIP INFO)
    ``digit_after`` seconds after the answer, hangs up ``hold_seconds`` after the answer."""
    pbx = site.pbx
    dtmf_ms = _ms(digit_after) if digit is not None else NEVER
    hold_ms = _ms(hold_seconds) - max(dtmf_ms, 0)
    assert hold_ms >= 0, "the caller hangs up before pressing the digit"
    return await Sipp("ast_carrier_call.xml", log_dir, "-p", str(free_port()), "-m", "1", "-s", did,
                      "-key", "trunk", trunk, "-key", "caller", caller, "-key", "digit", digit or "",
                      *_set(dtmf_ms=dtmf_ms, hold_ms=hold_ms),
                      f"{pbx.sip_host}:{pbx.sip_port}").start()


# ------------------------------------------------------------------------------------ ccserver


@dataclass
class Agent:
    id: str
    #: the agent's phone on this Asterisk (PJSIP/<phone>), its home device
    phone: str
    auto_login: bool = True
    #: the agent's dial strings on the site's other nodes (``agents[].devices``)
    devices: dict[str, str] = field(default_factory=dict)


def ccserver_toml(*, dsn: str, agi_port: int, api_port: int, state_dir: Path, hardware_dir: Path,
                  agents: list[Agent], recording: str, ring_timeout: int,
                  server: Mapping[str, str | int] = MappingProxyType({})) -> str:
    """A site's ccserver.toml as the README's configuration reference describes it; ``server``:
    more ``[server]`` keys (what the site's other nodes need, e.g. ``esl_outbound_port``)."""
    lines = [
        f'hardware_dir = "{hardware_dir}"',
        "[server]", 'agi_host = "127.0.0.1"', f"agi_port = {agi_port}", f'state_dir = "{state_dir}"',
        'log_level = "DEBUG"',
        # a JSON string or number is a TOML one
        *(f"{key} = {json.dumps(value)}" for key, value in server.items()),
        "[database]", f'dsn = "{dsn}"',
        "[api]", 'host = "127.0.0.1"', f"port = {api_port}",
        "[acd]", f"ring_timeout = {ring_timeout}",
        "[ivr]", f'flows_dir = "{REPO / "ivr_flows"}"',
        "[[queues]]", 'name = "support"', "wrapup_seconds = 1", f'recording = "{recording}"',
    ]
    for a in agents:
        lines += ["[[agents]]", f'id = "{a.id}"', f'name = "Agent {a.phone}"', f'node = "{NODE}"',
                  f'device = "PJSIP/{a.phone}"', 'queues = ["support"]',
                  f"auto_login = {'true' if a.auto_login else 'false'}"]
        if a.devices:
            lines.append("devices = { " + ", ".join(f"{n} = {json.dumps(d)}" for n, d in a.devices.items()) + " }")
    return "\n".join(lines) + "\n"


def node_toml(*, ami_host: str, ami_port: int, recording_root: str) -> str:
    """hardware/pbx1.toml: README step 3, a copy of hardware/examples/asterisk.toml.example with
    this site's host, port and recording root."""
    text = (REPO / "hardware" / "examples" / "asterisk.toml.example").read_text()
    for key, value in (("host", f'"{ami_host}"'), ("ami_port", str(ami_port)),
                       ("recording_root", f'"{recording_root}"'), ("ping_interval", "1.0"),
                       ("ping_timeout", "1.0")):
        text, n = re.subn(rf"(?m)^{key}\s*=\s*[^#\n]*", f"{key} = {value}  ", text)
        assert n == 1, f"hardware/examples/asterisk.toml.example has no {key} line"
    return text


class CcServer:
    """ccserver run as a site runs it: ``ccserver migrate``, ``users create-admin``, ``run``, in
    a subprocess with its own ccserver.toml and hardware/ folder."""

    ADMIN = "suite-admin"

    def __init__(self, tmp: Path, dsn: str, site: Site, agents: list[Agent], *, recording: str = "none",
                 ring_timeout: int = 5, ami_port: int | None = None,
                 other_nodes: Mapping[str, str] = MappingProxyType({}),
                 server: Mapping[str, str | int] = MappingProxyType({}),
                 secrets_env: Mapping[str, str] = MappingProxyType({})) -> None:
        """``other_nodes``: more ``hardware/<name>.toml`` files (name -> text) beside pbx1's, with
        the ``[server]`` keys (``server``) and the secrets in the environment (``secrets_env``)
        they need: one ccserver over this Asterisk and other PBXs."""
        self.tmp = tmp
        self.dsn = dsn
        self.site = site
        self.api_port = free_port()
        self.password = secrets.token_urlsafe(18)
        hardware = tmp / "hardware"
        hardware.mkdir(exist_ok=True)
        (hardware / f"{NODE}.toml").write_text(node_toml(
            ami_host=site.pbx.ami_host, ami_port=ami_port or site.pbx.ami_port, recording_root=site.recording_root))
        for name, text in other_nodes.items():
            (hardware / f"{name}.toml").write_text(text)
        self.config = tmp / "ccserver.toml"
        self.config.write_text(ccserver_toml(
            dsn=dsn, agi_port=site.agi_port, api_port=self.api_port, state_dir=tmp / "state",
            hardware_dir=hardware, agents=agents, recording=recording, ring_timeout=ring_timeout, server=server))
        self.log = tmp / "ccserver.log"
        # none of the suite's own CCSERVER_* variables (the admin secret among them) reach the
        # server: its configuration is the file, its secrets the nodes', as at a site
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CCSERVER_")}
        self.env["CCSERVER_AMI_SECRET_PBX1"] = site.ami_secret
        self.env.update(secrets_env)
        self.proc: asyncio.subprocess.Process | None = None
        self.http: aiohttp.ClientSession | None = None
        self.csrf = ""

    async def _cli(self, *args: str, stdin: bytes | None = None) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ccserver", "--config", str(self.config), *args, env=self.env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await proc.communicate(stdin)
        assert proc.returncode == 0, f"ccserver {' '.join(args)} failed: {out.decode()[-2000:]}"

    async def start(self) -> CcServer:
        await self._cli("migrate")
        await self._cli("users", "create-admin", self.ADMIN, "--password-stdin", stdin=self.password.encode() + b"\n")
        await self._cli("check-config")
        await self._spawn()
        return self

    async def _spawn(self) -> None:
        log = open(self.log, "ab")  # noqa: SIM115 - the child holds it
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ccserver", "--config", str(self.config), "run", env=self.env,
            stdout=log, stderr=asyncio.subprocess.STDOUT)
        log.close()
        # the session cookie is for 127.0.0.1: aiohttp keeps cookies of an IP address only when unsafe
        self.http = aiohttp.ClientSession(f"http://127.0.0.1:{self.api_port}",
                                          cookie_jar=aiohttp.CookieJar(unsafe=True))
        deadline = time.monotonic() + 60
        while True:
            self._alive()
            with contextlib.suppress(aiohttp.ClientError):
                async with self.http.post("/api/v1/login", json={"username": self.ADMIN,
                                                                 "password": self.password}) as r:
                    if r.status == 200:
                        self.csrf = (await r.json())["csrf_token"]
                        break
            if time.monotonic() > deadline:
                raise AssertionError(f"ccserver's API did not come up in 60 s; log:\n{self.log_tail()}")
            await asyncio.sleep(0.2)

    def _alive(self) -> None:
        assert self.proc is not None
        if self.proc.returncode is not None:
            raise AssertionError(f"ccserver exited with {self.proc.returncode}; log:\n{self.log_tail()}")

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:]) if self.log.exists() else ""

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    async def get(self, path: str):
        assert self.http is not None
        async with self.http.get(path) as r:
            assert r.status == 200, f"GET {path}: {r.status} {await r.text()}"
            return await r.json()

    async def send(self, method: str, path: str, body: dict | None = None) -> tuple[int, object]:
        """A state-changing API request (with the CSRF header the session cookie needs)."""
        assert self.http is not None
        async with self.http.request(method, path, json={} if body is None else body, headers={"X-CSRF-Token": self.csrf}) as r:
            return r.status, await r.json(content_type=None)

    async def agent(self, agent_id: str) -> dict:
        return await self.get(f"/api/v1/agents/{agent_id}")

    async def until(self, check, what: str, timeout: float = 30.0):
        """Poll the async ``check`` until it returns something truthy (ccserver must stay up)."""
        deadline = time.monotonic() + timeout
        while not (result := await check()):
            self._alive()
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}; ccserver log:\n"
                                     f"{self.log_tail()}")
            await asyncio.sleep(0.1)
        return result

    async def until_agent(self, agent_id: str, state: str, timeout: float = 30.0) -> dict:
        async def check():
            a = await self.agent(agent_id)
            return a if a["state"] == state else None
        return await self.until(check, f"agent {agent_id} {state}", timeout)

    async def rows(self, sql: str, *args) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.dsn)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    async def until_rows(self, sql: str, *args, timeout: float = 30.0, what: str = "rows") -> list[asyncpg.Record]:
        async def check():
            return await self.rows(sql, *args)
        return await self.until(check, what, timeout)

    async def calls(self, timeout: float = 30.0, count: int = 1) -> list[asyncpg.Record]:
        """The CDR rows, once ``count`` of them are written."""
        async def check():
            rows = await self.rows("SELECT * FROM calls ORDER BY arrived_at")
            return rows if len(rows) >= count else None
        return await self.until(check, f"{count} CDR row(s)", timeout)

    async def states(self, agent_id: str) -> list[tuple[str, str | None]]:
        rows = await self.rows("SELECT state, reason FROM agent_state_changes WHERE agent_id = $1 ORDER BY at",
                               agent_id)
        return [(r["state"], r["reason"]) for r in rows]

    async def restart(self) -> None:
        """Stop ccserver (SIGTERM, as a service manager does) and run it again on the same site."""
        await self.stop()
        await self._spawn()

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.close()
            self.http = None
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(20):
                    await self.proc.wait()
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()

