"""A real FreeSWITCH, SIPp phones and the real ccserver in front of them (tests/real_pbx/).

``CCSERVER_REAL_FREESWITCH`` holds ``host:port`` of the ESL inbound socket of a lab FreeSWITCH
running **on this machine**, e.g. ``127.0.0.1:8021``, set up as README "Connecting FreeSWITCH"
says (ccserver's files installed, the ``ccserver`` ACL allowing 127.0.0.1, started with
``CCSERVER_ESL_PASSWORD`` in its environment); the tests get that same variable, the password
ccserver and the suite log in with. The switch needs mod_sofia with the vanilla ``internal`` and
``external`` profiles and directory users 1001..1003, mod_event_socket, mod_commands,
mod_dptools, mod_dialplan_xml, mod_sndfile and mod_local_stream. The suite learns the rest from
the switch (``global_getvar``): ``conf_dir`` (it installs the tree's ``dialplans/freeswitch/``
files there as README step 1 says, sets the ``external`` profile's ``context`` to
``ccserver-inbound``, then ``reloadxml``), ``base_dir`` (the binary, for the start-up tests, which
run a second, throw-away FreeSWITCH on a copy of ``conf_dir`` with ports of its own),
``sounds_dir`` (it writes the prompts of ``ivr_flows/main.yaml`` under ``<sounds_dir>/en/``, and
hold music when there is none), ``domain`` and ``default_password`` (the agent phones register
as the directory users) and the profiles' ports (carrier calls go to ``external``, agents
register on ``internal``). Every test hangs up all calls on the switch (``hupall``): use a lab
switch, and one run of the suite at a time.

Phones are SIPp (Debian's ``sip-tester``) processes on loopback, scenarios in ``sipp/``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import yaml
from rig import free_port

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "dialplans" / "freeswitch"
SCENARIOS = Path(__file__).resolve().parent / "sipp"
ENV = "CCSERVER_REAL_FREESWITCH"
PASSWORD_ENV = "CCSERVER_ESL_PASSWORD"
NODE = "fs1"  # ccserver_node as shipped in ccserver_vars.xml
AGENTS = ("1001", "1002", "1003")
#: README step 1's include line for vars.xml
VARS_INCLUDE = '<X-PRE-PROCESS cmd="include" data="ccserver_vars.xml"/>'


def esl_address() -> tuple[str, int]:
    value = os.environ[ENV]
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"{ENV}={value!r}: expected host:port of FreeSWITCH's ESL, e.g. 127.0.0.1:8021")
    return host, int(port)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- ESL, spoken plainly (the suite's own few lines, not ccserver's codec) ----------------------

class EslRefused(Exception):
    """The switch did not accept the login: the message is what it answered."""


async def _read_frame(reader: asyncio.StreamReader) -> tuple[dict[str, str], str]:
    head = (await reader.readuntil(b"\n\n")).decode("latin-1")
    headers = dict(line.split(": ", 1) for line in head.strip("\n").split("\n") if ": " in line)
    body = b""
    if "Content-Length" in headers:
        body = await reader.readexactly(int(headers["Content-Length"]))
    return headers, body.decode("utf-8", "replace")


class Esl:
    """An inbound ESL connection for ``api`` commands (no events)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    @classmethod
    async def login(cls, host: str, port: int, password: str, timeout: float = 5.0) -> Esl:
        """Connect and ``auth``; :class:`EslRefused` with the switch's answer when refused."""
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                headers, body = await _read_frame(reader)
                if headers.get("Content-Type") != "auth/request":
                    raise EslRefused(f"{headers.get('Content-Type')}: {body.strip()}")
                writer.write(f"auth {password}\n\n".encode())
                headers, body = await _read_frame(reader)
                if headers.get("Reply-Text", "").strip() != "+OK accepted":
                    raise EslRefused(headers.get("Reply-Text", "").strip() or body.strip())
            except (EslRefused, asyncio.IncompleteReadError, OSError):
                writer.transport.abort()
                raise
        return cls(reader, writer)

    async def api(self, command: str, timeout: float = 20.0) -> str:
        async with asyncio.timeout(timeout):
            self._writer.write(f"api {command}\n\n".encode())
            while True:
                headers, body = await _read_frame(self._reader)
                if headers.get("Content-Type") == "api/response":
                    return body

    async def close(self) -> None:
        self._writer.transport.abort()


async def login_answer(host: str, port: int, password: str) -> str:
    """What the switch answers to ``auth <password>``: ``+OK accepted``, ``-ERR invalid``, the
    rejection text, or ``connection refused``."""
    try:
        esl = await Esl.login(host, port, password)
    except EslRefused as e:
        return str(e)
    except (ConnectionRefusedError, asyncio.IncompleteReadError) as e:
        return "connection refused" if isinstance(e, ConnectionRefusedError) else "connection closed"
    await esl.close()
    return "+OK accepted"


# --- the shipped files, installed as README "Connecting FreeSWITCH" step 1 says -----------------

def install_shipped_files(conf_dir: Path, *, outbound: str, esl_port: int | None = None) -> None:
    """Copy ``dialplans/freeswitch/`` into ``conf_dir`` the README's way.

    ``ccserver.xml`` into ``dialplan/``, ``ccserver_vars.xml`` beside ``vars.xml`` (included from
    there, ``ccserver_node`` = :data:`NODE`, ``ccserver_outbound`` = ``outbound``; ``esl_port``,
    when given, replaces the shipped ``ccserver_esl_listen_port``), ``event_socket.conf.xml`` into
    ``autoload_configs/``, and the ``external`` SIP profile's ``context`` = ``ccserver-inbound``.
    """
    shutil.copyfile(SHIPPED / "ccserver.xml", conf_dir / "dialplan" / "ccserver.xml")
    text = (SHIPPED / "ccserver_vars.xml").read_text()
    text = _set_var(text, "ccserver_node", NODE)
    text = _set_var(text, "ccserver_outbound", outbound)
    if esl_port is not None:
        text = _set_var(text, "ccserver_esl_listen_port", str(esl_port))
    (conf_dir / "ccserver_vars.xml").write_text(text)
    shutil.copyfile(SHIPPED / "event_socket.conf.xml", conf_dir / "autoload_configs" / "event_socket.conf.xml")
    vars_xml = conf_dir / "vars.xml"
    text = vars_xml.read_text()
    if VARS_INCLUDE not in text:
        head, sep, tail = text.rpartition("</include>")
        vars_xml.write_text(f"{head}  {VARS_INCLUDE}\n{sep}{tail}")
    profile = conf_dir / "sip_profiles" / "external.xml"
    profile.write_text(re.sub(r'(<param name="context" value=")[^"]*(")', r"\1ccserver-inbound\2",
                              profile.read_text()))


def _set_var(text: str, name: str, value: str) -> str:
    new, count = re.subn(rf'(data="{name}=)[^"]*(")', rf"\g<1>{value}\g<2>", text)
    if count != 1:
        raise AssertionError(f"ccserver_vars.xml sets {name} {count} times, expected once")
    return new


def write_prompt(path: Path, seconds: float = 0.6, hz: float = 440.0) -> None:
    """A short 8 kHz mono tone WAV (what the switch plays in place of a real prompt)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * hz * i / 8000)))
                      for i in range(int(8000 * seconds)))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(frames)


@dataclass
class Switch:
    """The running FreeSWITCH, as it describes itself over ESL."""

    host: str
    port: int
    password: str = field(repr=False)
    conf_dir: Path
    base_dir: Path
    sounds_dir: Path
    recordings_dir: Path
    domain: str
    sip_password: str = field(repr=False)
    internal: tuple[str, int]
    external: tuple[str, int]

    @classmethod
    async def discover(cls) -> Switch:
        host, port = esl_address()
        password = os.environ[PASSWORD_ENV]
        esl = await Esl.login(host, port, password)
        try:
            async def var(name: str) -> str:
                value = (await esl.api(f"global_getvar {name}")).strip()
                if not value:
                    raise AssertionError(f"FreeSWITCH at {host}:{port} has no global variable {name}")
                return value

            sip_ip = await var("local_ip_v4")
            return cls(
                host=host, port=port, password=password,
                conf_dir=Path(await var("conf_dir")), base_dir=Path(await var("base_dir")),
                sounds_dir=Path(await var("sounds_dir")), recordings_dir=Path(await var("recordings_dir")),
                domain=await var("domain"), sip_password=await var("default_password"),
                internal=(sip_ip, int(await var("internal_sip_port"))),
                external=(sip_ip, int(await var("external_sip_port"))),
            )
        finally:
            await esl.close()

    @property
    def binary(self) -> Path:
        return self.base_dir / "bin" / "freeswitch"

    async def api(self, command: str) -> str:
        esl = await Esl.login(self.host, self.port, self.password)
        try:
            return await esl.api(command)
        finally:
            await esl.close()

    async def load_shipped_files(self, outbound: str) -> None:
        """Install the repository's files into the running switch and ``reloadxml`` them."""
        install_shipped_files(self.conf_dir, outbound=outbound)
        answer = await self.api("reloadxml")
        # "+OK [Success]"; a file that does not load is "+OK [<the error>]" too (mod_commands.c,
        # reload_xml_function), and the switch keeps the XML it had
        if answer.strip() != "+OK [Success]":
            raise AssertionError(f"reloadxml with the shipped files: {answer.strip()}")
        # a profile reads its context when it starts
        if not await self._profile_context_is("external", "ccserver-inbound"):
            await self.api("sofia profile external restart")
            await until(lambda: self._profile_context_is("external", "ccserver-inbound"), 30,
                        "the external SIP profile to restart with context ccserver-inbound")

    async def _profile_context_is(self, profile: str, context: str) -> bool:
        status = await self.api(f"sofia status profile {profile}")
        return any(line.split() == ["Context", context] for line in status.splitlines())

    async def channels(self) -> list[dict]:
        data = json.loads(await self.api("show channels as json"))
        return data.get("rows", [])

    async def hang_up_everything(self) -> None:
        await self.api("hupall MANAGER_REQUEST")


# --- SIPp phones -----------------------------------------------------------------------------

_media_ports = itertools.count(40000 + (os.getpid() % 200) * 100, 4)


class Sipp:
    """One SIPp process; its messages and errors go to ``log_dir``."""

    def __init__(self, args: list[str], log_dir: Path, name: str) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log = log_dir / f"{name}.out"
        self._out = self.log.open("wb")
        self.process = subprocess.Popen(
            ["sipp", *args, "-nostdin", "-trace_err", "-trace_msg",
             "-message_file", str(log_dir / f"{name}.messages"),
             "-error_file", str(log_dir / f"{name}.errors")],
            stdin=subprocess.DEVNULL, stdout=self._out, stderr=subprocess.STDOUT, cwd=log_dir)

    async def wait(self, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"SIPp {self.name} still running after {timeout} s")
            await asyncio.sleep(0.1)
        return self.process.returncode

    async def listening(self, port: int, timeout: float = 10.0) -> None:
        """Wait until this SIPp has bound UDP ``port`` (it loaded its scenario); fail with its
        errors when it exits first."""
        deadline = time.monotonic() + timeout
        while not _udp_bound(port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                errors = self.log.with_suffix(".errors")
                raise AssertionError(f"SIPp {self.name} is not listening on {port}: "
                                     f"{self.log.read_text(errors='replace')}"
                                     f"{errors.read_text(errors='replace') if errors.exists() else ''}")
            await asyncio.sleep(0.05)

    def messages(self) -> str:
        path = self.log.with_suffix(".messages")
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        _end(self.process, signal.SIGTERM, 5)
        self._out.close()


class Phones:
    """Agent phones registered as directory users and a carrier placing calls, all SIPp."""

    def __init__(self, switch: Switch, log_dir: Path, agent_ports: dict[str, int]) -> None:
        self.switch, self.log_dir, self.agent_ports = switch, log_dir, agent_ports
        self._running: list[Sipp] = []
        self._names = itertools.count(1)

    def _start(self, scenario: str, remote: tuple[str, int], port: int, extra: list[str], name: str) -> Sipp:
        args = [f"{remote[0]}:{remote[1]}", "-sf", str(SCENARIOS / scenario), "-i", "127.0.0.1",
                "-p", str(port), "-mi", "127.0.0.1", "-mp", str(next(_media_ports)), *extra]
        sipp = Sipp(args, self.log_dir, f"{next(self._names):02d}-{name}")
        self._running.append(sipp)
        return sipp

    async def register(self, ext: str) -> None:
        sipp = self._start("fs_register.xml", self.switch.internal, self.agent_ports[ext],
                           ["-m", "1", "-s", ext, "-au", ext, "-ap", self.switch.sip_password,
                            "-key", "domain", self.switch.domain, "-timeout", "10s", "-timeout_error"],
                           f"register-{ext}")
        if await sipp.wait(15) != 0:
            raise AssertionError(f"agent {ext} could not register: {sipp.log.read_text(errors='replace')}")

    async def agent(self, ext: str, answer_after: float = 1.0, calls: int = 10) -> Sipp:
        """Agent ``ext``'s phone answering every call after ``answer_after`` seconds of ringing."""
        return await self._phone(ext, "fs_agent_answer.xml", ["-d", str(int(answer_after * 1000))], calls)

    async def agent_never_answering(self, ext: str, calls: int = 10) -> Sipp:
        return await self._phone(ext, "fs_agent_no_answer.xml", [], calls)

    async def _phone(self, ext: str, scenario: str, extra: list[str], calls: int) -> Sipp:
        port = self.agent_ports[ext]
        sipp = self._start(scenario, self.switch.internal, port, ["-m", str(calls), *extra],
                           f"agent-{ext}-{Path(scenario).stem}")
        await sipp.listening(port)
        return sipp

    def call(self, caller: str, did: str = "support", press_1: bool = True, talk: float = 5.0,
             wait: float = 1.5) -> Sipp:
        """The carrier calls ``did`` from ``caller``, presses 1 (or not) ``wait`` s after the
        answer, hangs up ``talk`` s after that."""
        return self._start("fs_caller.xml", self.switch.external, free_udp_port(),
                           ["-m", "1", "-s", did, "-key", "caller", caller,
                            "-key", "press", "1" if press_1 else "0", "-key", "wait", str(int(wait * 1000)),
                            "-key", "talk", str(int(talk * 1000)), "-timeout", "120s"],
                           f"call-{caller}")

    def stop(self) -> None:
        for sipp in self._running:
            sipp.stop()


def _prompts(flow: Path) -> set[str]:
    """Every prompt a flow file names (``prompts`` lists and ``*prompt`` keys)."""
    names: set[str] = set()
    for node in yaml.safe_load(flow.read_text())["nodes"].values():
        for key, value in node.items():
            if key == "prompts":
                names.update(value)
            elif key.endswith("prompt"):
                names.add(value)
    return names


@dataclass
class Site:
    """The running switch with the repository's files loaded, and what every test shares."""

    switch: Switch
    #: where the shipped dialplan sends calls (``ccserver_outbound``): ccserver's outbound-socket port
    outbound_port: int
    #: the SIP port each agent phone (directory user) registered from
    agent_ports: dict[str, int]
    logs: Path


async def load_site(switch: Switch, logs: Path) -> Site:
    """Load the repository's files, prompts and hold music into the switch and register the agent
    phones (the directory users)."""
    outbound_port = free_port()
    await switch.load_shipped_files(f"127.0.0.1:{outbound_port}")
    # README "Prompts": a flow's prompt is played from the channel's sound_prefix, which the
    # flow's language (main: en) sets to $${sounds_dir}/en
    for name in _prompts(ROOT / "ivr_flows" / "main.yaml"):
        write_prompt(switch.sounds_dir / "en" / f"{name}.wav")
    # ccserver_hold_music local_stream://moh falls back to the "default" stream of the vanilla
    # local_stream.conf.xml, $${sounds_dir}/music/8000, which a source build leaves empty
    # (mod_local_stream.c logs "Can't open directory" and starts no stream to play)
    music = switch.sounds_dir / "music" / "8000"
    if not any(music.glob("*.wav")):
        write_prompt(music / "ccserver-test-hold.wav", seconds=10, hz=330)
        await switch.api("local_stream start default")
    site = Site(switch, outbound_port, {ext: free_udp_port() for ext in AGENTS}, logs)
    phones = Phones(switch, logs / "registration", site.agent_ports)
    try:
        for ext in AGENTS:
            await phones.register(ext)
    finally:
        phones.stop()
    return site


# --- a throw-away FreeSWITCH for the start-up tests ------------------------------------------

class ThrowawaySwitch:
    """A second FreeSWITCH process from the running one's binary and a copy of its
    configuration, with the repository's files installed and ports of its own."""

    def __init__(self, switch: Switch, folder: Path, env: dict[str, str], acl_allow: str | None = None) -> None:
        """``acl_allow``: the only address block the ``ccserver`` ACL list allows, if given."""
        self.folder = folder
        self.conf = folder / "conf"
        shutil.copytree(switch.conf_dir, self.conf)
        self.esl_port = free_port()
        install_shipped_files(self.conf, outbound="127.0.0.1:1", esl_port=self.esl_port)
        if acl_allow is not None:
            acl = self.conf / "autoload_configs" / "acl.conf.xml"
            only = f'<list name="ccserver" default="deny"><node type="allow" cidr="{acl_allow}"/></list>'
            acl.write_text(re.sub(r'<list name="ccserver".*?</list>', only, acl.read_text(), flags=re.S))
        vars_xml = self.conf / "vars.xml"
        text = vars_xml.read_text()
        for var in ("internal_sip_port", "external_sip_port", "internal_tls_port", "external_tls_port"):
            text = re.sub(rf'(data="{var}=)\d+(")', rf"\g<1>{free_udp_port()}\g<2>", text)
        vars_xml.write_text(text)
        dirs = {d: folder / d for d in ("log", "db", "run", "temp", "storage", "cache", "recordings")}
        for d in dirs.values():
            d.mkdir()
        self.log = dirs["log"] / "freeswitch.log"
        self.output = folder / "stdout.txt"
        args = [str(switch.binary), "-nc", "-nf", "-nonat", "-conf", str(self.conf)]
        for name, path in dirs.items():
            args += [f"-{name}", str(path)]
        self._out = self.output.open("wb")
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._out,
                                        stderr=subprocess.STDOUT, env=env, cwd=folder)

    def printed(self) -> str:
        """What the process printed and logged so far."""
        text = self.output.read_text(errors="replace")
        if self.log.exists():
            text += self.log.read_text(errors="replace")
        return text

    async def started(self, timeout: float = 60.0) -> bool:
        """True once the core says ``FreeSWITCH Started``; False when the process exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "FreeSWITCH Started" in self.printed():
                return True
            if self.process.poll() is not None:
                return "FreeSWITCH Started" in self.printed()
            await asyncio.sleep(0.2)
        raise AssertionError(f"FreeSWITCH neither started nor exited in {timeout} s:\n{self.printed()[-3000:]}")

    def stop(self) -> None:
        _end(self.process, signal.SIGINT, 30)  # -nc -nf: SIGINT is a clean shutdown (switch.c)
        self._out.close()


def _udp_bound(port: int) -> bool:
    """Whether some socket on this machine is bound to UDP ``port`` (``/proc/net/udp``)."""
    with open("/proc/net/udp") as table:
        return any(line.split()[1].endswith(f":{port:04X}") for line in list(table)[1:])


def _end(process: subprocess.Popen, sig: int, grace: float) -> None:
    """Stop a process this suite started: ``sig``, then SIGKILL after ``grace`` seconds."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def rows(dsn: str, sql: str, *args):
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def until(predicate, timeout: float, what: str) -> None:
    """Wait for ``predicate()`` (sync or async) to be true; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.1)



# --- ccserver, started as `ccserver run` starts it -------------------------------------------

def _toml(value) -> str:
    """A TOML value (strings, numbers, booleans, lists, inline tables) for the test's files."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (str, Path)):
        return json.dumps(str(value))  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {value!r}")


def _table(name: str, values: dict) -> str:
    return f"[{name}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in values.items())


def node_toml(esl: tuple[str, int], recording_root: Path) -> str:
    """``hardware/fs1.toml``: the switch's ESL at ``esl`` (host, port), the password from
    :data:`PASSWORD_ENV`."""
    return f'name = "{NODE}"\nkind = "freeswitch"\n' + "".join(f"{k} = {_toml(v)}\n" for k, v in {
        "host": esl[0], "esl_port": esl[1], "esl_password_env": PASSWORD_ENV,
        "inbound_contexts": ["ccserver-inbound"], "recording_root": recording_root,
        "ping_interval": 2.0, "ping_timeout": 2.0, "command_timeout": 5.0}.items())


class CcServer:
    """ccserver with a ``ccserver.toml`` and ``hardware/fs1.toml`` written into ``folder``, loaded
    and checked the way ``ccserver run`` does (``load_config``, ``load_nodes``, ``check_site``)."""

    def __init__(self, folder: Path, dsn: str, esl: tuple[str, int], outbound_port: int,
                 recording_root: Path, agents: list[dict], queue: dict | None = None,
                 ring_timeout: float = 8) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "hardware").mkdir(exist_ok=True)
        self.folder, self.dsn = folder, dsn
        (folder / "hardware" / f"{NODE}.toml").write_text(node_toml(esl, recording_root))
        parts = [
            _table("server", {"agi_port": free_port(), "esl_outbound_host": "127.0.0.1",
                              "esl_outbound_port": outbound_port, "state_dir": folder / "state"}),
            _table("database", {"dsn": dsn}),
            _table("acd", {"ring_timeout": ring_timeout}),
            _table("ivr", {"flows_dir": ROOT / "ivr_flows", "routes": {"*": "main"}}),
            _table("simulator", {"enabled": "off"}),
            _table("api", {"port": 0}),
            "[[queues]]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in
                                     {"name": "support", "wrapup_seconds": 1, **(queue or {})}.items()),
        ]
        for agent in agents:
            parts.append("[[agents]]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in agent.items()))
        self.config_path = folder / "ccserver.toml"
        # a top-level key comes before the first table
        self.config_path.write_text(f"hardware_dir = {_toml(folder / 'hardware')}\n\n" + "\n".join(parts))
        self.server = None

    async def start(self, logged_in: bool = True) -> None:
        """Start; with ``logged_in``, return once the ESL login went through."""
        from ccserver.app import Server
        from ccserver.config import load_config
        from ccserver.hardware import check_site, load_nodes

        config = load_config(self.config_path, environ={})
        nodes = load_nodes(config.hardware_dir)
        check_site(config, nodes)
        self.server = Server(config, nodes)
        await self.server.start()
        if logged_in:
            await until(lambda: self.server.adapters[NODE].connected, 15, "ccserver's ESL login")

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None

    @property
    def center(self):
        return self.server.center

    def call_from(self, caller: str):
        """The live call of ``caller`` (the carrier's From user), or None."""
        for call in self.center.calls.values():
            if call.caller.endswith(caller):
                return call
        return None

    def dispatch(self, decisions) -> None:
        self.server._dispatch(decisions)

    def login(self, agent_id: str) -> None:
        self.dispatch(self.center.login(agent_id, self.server.clock()))

    async def cdr(self, caller: str, timeout: float = 20.0):
        """The CDR row of the call from ``caller``, once written."""
        found = []

        async def written() -> bool:
            found[:] = await rows(self.dsn, "SELECT * FROM calls WHERE caller LIKE '%' || $1", caller)
            return bool(found)

        await until(written, timeout, f"the CDR of the call from {caller}")
        assert len(found) == 1, f"{len(found)} CDR rows for {caller}: {found}"
        return found[0]

    async def agent_states(self, agent_id: str) -> list[tuple[str, str, str | None]]:
        got = await rows(self.dsn, "SELECT previous, state, reason FROM agent_state_changes "
                         "WHERE agent_id = $1 ORDER BY at, change_id", agent_id)
        return [(r["previous"], r["state"], r["reason"]) for r in got]
