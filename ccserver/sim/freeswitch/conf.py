"""What a FreeSWITCH makes of its configuration directory: pre-processor, XML, and two readers.

FreeSWITCH does not hand its XML files to an XML parser as they are. ``switch_xml.c``
(``preprocess``, ``preprocess_glob``, ``preprocess_exec``, ``preprocess_env_set``,
``preprocess_exec_set``, ``expand_vars``) first runs a line-based pre-processor over
``freeswitch.xml`` and everything it includes, and only its output is parsed. The rules that
matter, each followed here:

* every line is ``$${name}``-expanded first (an unknown name gives ``""``);
* a line holding ``<include>``, ``</include>`` or ``<?`` is dropped whole;
* a line holding ``X-PRE-PROCESS`` (any case) is a command when ``<`` comes right before it,
  and is dropped either way, **even inside an ordinary ``<!-- -->`` comment**: the pre-processor
  knows nothing of XML comments. Only a ``<!--#`` block is skipped, up to its ``-->``;
* ``include`` globs relative to the directory of the file that holds it (the conf dir for
  ``freeswitch.xml``), sorted; no match is only an info line; more than 100 nested levels logs
  ``Maximum recursion limit reached`` and stops descending;
* ``set`` trims the blanks around ``=``; ``env-set`` reads the environment only when the value is
  written ``$NAME`` and leaves the variable alone when ``NAME`` is unset; ``exec-set`` runs the
  value through ``/bin/sh`` and sets the variable only to a non-empty output (trailing blanks and
  newlines cut); ``exec`` inserts a command's output as it is;
* a stored value has every ``${`` turned into ``%{`` (``switch_string_var_check``).

The simulator stands in for FreeSWITCH, so this lives beside it; tests load the shipped
``dialplans/freeswitch/`` files through it inside a FreeSWITCH-like tree. :func:`event_socket`
reads the result as ``mod_event_socket.c`` ``config()`` does, :func:`hunt` runs a context as
``mod_dialplan_xml.c`` ``parse_exten`` does (for the conditions ccserver's files use).
"""

from __future__ import annotations

import glob
import re
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

#: ``preprocess`` returns -1 past this depth (``rlevel > 100``)
MAX_INCLUDE_DEPTH = 100
#: how long an ``exec`` / ``exec-set`` command may run here (FreeSWITCH waits for ever)
EXEC_TIMEOUT = 30.0


class FreeSwitchConfError(Exception):
    """FreeSWITCH would not start with this configuration (the message says why)."""


@dataclass
class FreeSwitchConf:
    """The parsed document FreeSWITCH would run with, and what pre-processing left behind."""

    root: ET.Element
    #: the global variables after pre-processing (``$${name}`` values)
    variables: dict[str, str]
    #: the pre-processor's info lines (e.g. ``No files to include at ...``)
    notes: list[str] = field(default_factory=list)

    def section(self, name: str) -> ET.Element:
        for s in self.root.iter("section"):
            if s.get("name") == name:
                return s
        raise KeyError(f"no <section name={name!r}>")

    def configuration(self, name: str) -> ET.Element:
        """``<configuration name=...>`` as ``switch_xml_open_cfg`` finds it (the first one)."""
        for c in self.section("configuration").iter("configuration"):
            if c.get("name") == name:
                return c
        raise KeyError(f"no <configuration name={name!r}>")

    def context(self, name: str) -> ET.Element:
        """A dialplan ``<context name=...>`` (the first one, as the XML dialplan finds it)."""
        for c in self.section("dialplan").iter("context"):
            if c.get("name") == name:
                return c
        raise KeyError(f"no dialplan <context name={name!r}>")


def load(conf_dir: Path, env: Mapping[str, str], *, file: str = "freeswitch.xml",
         variables: Mapping[str, str] | None = None) -> FreeSwitchConf:
    """Pre-process ``conf_dir/file`` with the process environment ``env``, then parse it.

    ``variables`` are the core's own globals set before the pre-processor runs (``conf_dir``,
    ``local_ip_v4``, ...). Raises :class:`FreeSwitchConfError` on anything FreeSWITCH logs as an
    error while pre-processing, and when the result is not well-formed XML (FreeSWITCH then
    exits with ``Cannot Initialize``).
    """
    pre = _Preprocessor(env, dict(variables or {}))
    out: list[str] = []
    pre.run(conf_dir, conf_dir / file, out, 0)
    if pre.errors:
        raise FreeSwitchConfError("; ".join(pre.errors))
    text = "".join(out)
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        lines, line = text.splitlines(), e.position[0]
        near = lines[line - 1].strip() if 0 < line <= len(lines) else ""
        raise FreeSwitchConfError(f"Cannot Initialize [{e}] near {near!r}") from None
    return FreeSwitchConf(root, pre.variables, pre.notes)


class _Preprocessor:
    def __init__(self, env: Mapping[str, str], variables: dict[str, str]):
        self.env = env
        self.variables = variables
        self.errors: list[str] = []
        self.notes: list[str] = []

    # -- switch_xml.c preprocess ------------------------------------------------------------

    def run(self, cwd: Path, path: Path, out: list[str], rlevel: int) -> bool:
        if rlevel > MAX_INCLUDE_DEPTH:
            return False
        try:
            data = path.read_bytes().decode("utf-8", "surrogateescape")
        except OSError as e:
            self.errors.append(f"Couldn't open {path} ({e.strerror})")
            return False
        ml = False  # inside a multi-line <!--# block
        for lineno, buf in enumerate(re.findall(r"[^\r\n]*[\r\n]|[^\r\n]+$", data), 1):
            bp = self._expand(buf, path, lineno)
            if "<include>" in buf or "</include>" in buf or "<?" in buf:
                continue
            if ml:
                end = buf.find("-->")
                if end < 0:
                    continue
                ml, bp = False, buf[end + 3:]
            at = bp.lower().find("x-pre-process")
            if at >= 0:
                if at > 0 and bp[at - 1] == "<":
                    self._tag_command(cwd, bp[at:], out, rlevel)
                continue  # the whole line goes, command or not
            at = bp.find("<!--#")
            if at >= 0:
                out.append(bp[:at])
                end = bp.find("-->", at)
                if end >= 0:
                    out.append(bp[end + 3:])
                    body = bp[at + 5:end]
                else:
                    ml, body = True, bp[at + 5:]
                self._comment_command(cwd, re.split(r"[\r\n]", body)[0], out, rlevel)
                continue
            out.append(bp)
        return True

    def _tag_command(self, cwd: Path, tag: str, out: list[str], rlevel: int) -> None:
        """``<X-PRE-PROCESS cmd="..." data="..."/>``, found the way the C code finds them."""
        close = tag.find("/>")
        if close >= 0:
            tag = tag[:close + 2]
        at = _seek(tag, 0, "cmd", "=", '"')
        end = tag.find('"', at) if at >= 0 else -1
        start = _seek(tag, end + 1, "data", "=", '"') if end >= 0 else -1
        if start < 0:
            return
        cmd, stop = tag[at:end].lower(), tag.find('"', start)
        arg = tag[start:] if stop < 0 else tag[start:stop]
        if cmd == "env-set":
            self._env_set(arg)
        else:
            self._command(cmd, cwd, arg, out, rlevel)

    def _comment_command(self, cwd: Path, body: str, out: list[str], rlevel: int) -> None:
        """``<!--#cmd "arg"-->``; ``<!--#comment ...`` is a command no one knows, so nothing."""
        cmd, sp, arg = body.partition(" ")
        if not sp:
            return
        q = arg.find('"')
        if q >= 0 and (qq := arg.find('"', q + 1)) >= 0:
            arg = arg[q + 1:qq]
        if cmd.lower() != "env-set":  # the <!--# form has no env-set
            self._command(cmd.lower(), cwd, arg, out, rlevel)

    def _command(self, cmd: str, cwd: Path, arg: str, out: list[str], rlevel: int) -> None:
        if cmd == "set":
            if (kv := _split_set(arg)) is not None:
                self._set(*kv)
        elif cmd == "exec-set":
            if (kv := _split_set(arg)) is not None:
                value = self._shell(kv[1]).rstrip(" \n")
                if value:
                    self._set(kv[0], value)
        elif cmd == "stun-set":
            self.notes.append(f"stun-set {arg!r} not run (no STUN lookup here)")
        elif cmd == "include":
            self._include(cwd, arg, out, rlevel + 1)
        elif cmd == "exec":
            out.append(self._shell(arg))

    def _include(self, cwd: Path, pattern: str, out: list[str], rlevel: int) -> None:
        """``preprocess_glob``: relative to ``cwd``; each file preprocessed from its own dir."""
        full = pattern if pattern.startswith("/") or "://" in pattern else f"{cwd}/{pattern}"
        matches = sorted(glob.glob(full))
        if not matches:
            self.notes.append(f"No files to include at {full}")
            return
        for match in matches:
            path = Path(match)
            if not self.run(path.parent, path, out, rlevel) and rlevel > MAX_INCLUDE_DEPTH:
                self.errors.append(f"Error including {full} (Maximum recursion limit reached)")

    def _env_set(self, keyval: str) -> None:
        """``preprocess_env_set``: no trimming, and the environment only for ``$NAME``."""
        key, eq, val = keyval.partition("=")
        if eq and val.startswith("$") and (data := self.env.get(val[1:])) is not None:
            self._set(key, data)

    def _set(self, name: str, value: str) -> None:
        self.variables[name] = re.sub(r"\$(?=\\*\{)", "%", value)  # switch_string_var_check

    def _shell(self, command: str) -> str:
        """What ``popen(command)`` prints, run with FreeSWITCH's environment."""
        done = subprocess.run(["/bin/sh", "-c", command], env=dict(self.env),
                              stdout=subprocess.PIPE, timeout=EXEC_TIMEOUT, check=False)
        return done.stdout.decode("utf-8", "surrogateescape")

    def _expand(self, buf: str, path: Path, lineno: int) -> str:
        """``expand_vars``: ``$${name}`` (braces may nest) to the variable, or to nothing."""
        if "$${" not in buf:
            return buf
        out, i = [], 0
        while i < len(buf):
            if buf.startswith("$${", i):
                end = _end_paren(buf, i + 2)
                if end >= 0:
                    out.append(self.variables.get(buf[i + 3:end], ""))
                    i = end + 1
                    continue
                self.errors.append(f"Error [unterminated ${{var}}] in file {path} line {lineno}")
            out.append(buf[i])
            i += 1
        return "".join(out)


def _seek(text: str, start: int, *needles: str) -> int:
    """Past the last of ``needles``, each searched (any case) after the one before, or -1."""
    low = text.lower()
    for needle in needles:
        start = low.find(needle, start)
        if start < 0:
            return -1
        start += len(needle)
    return start


def _split_set(arg: str) -> tuple[str, str] | None:
    name, eq, value = arg.partition("=")
    return (name.rstrip(" "), value.lstrip(" ")) if eq else None


def _end_paren(s: str, start: int) -> int:
    """``switch_find_end_paren`` for the ``{`` at ``start``: the index of its ``}``, or -1."""
    depth = 0
    for i in range(start, len(s)):
        if s[i] == "{":
            depth += 1
        elif s[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    return -1


# -- mod_event_socket -----------------------------------------------------------------------

@dataclass(frozen=True)
class EventSocketSettings:
    """Where and how mod_event_socket listens."""

    listen_ip: str
    listen_port: int
    password: str
    acls: tuple[str, ...]


def event_socket(conf: FreeSwitchConf) -> EventSocketSettings:
    """``mod_event_socket.c`` ``config()``: the ``<settings>`` params in order, the last one of a
    name winning, then its defaults: ``127.0.0.1``, port 8021, ACL ``loopback.auto``, and the
    password ``ClueCon`` whenever the configured one is empty."""
    ip, port, password, acls = "", 0, "", []
    for param in conf.configuration("event_socket.conf").iterfind("settings/param"):
        name, value = param.get("name", ""), param.get("value", "")
        if name == "listen-ip":
            ip = value
        elif name == "listen-port":
            port = int(m.group()) if (m := re.match(r"\s*[+-]?\d+", value)) else 0  # atoi
        elif name == "password":
            password = value
        elif name.lower() == "apply-inbound-acl" and value:
            acls.append(value)
    return EventSocketSettings(ip or "127.0.0.1", port or 8021, password or "ClueCon",
                               tuple(acls) or ("loopback.auto",))


# -- mod_dialplan_xml -------------------------------------------------------------------------

def hunt(context: ET.Element, profile: Mapping[str, str],
         variables: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """The applications the XML dialplan queues for a call in ``context``.

    ``profile`` holds caller-profile fields (``destination_number``, ...), ``variables`` the
    channel's variables for ``${name}`` fields. The data is as queued: FreeSWITCH expands it
    when it runs the application (:func:`expand`). Extensions are tried in order; a condition's
    actions are queued when it matches (``$1``... filled from its regex), its anti-actions when
    it does not; the first failing condition (``break="on-false"``) ends the extension, which
    counts as matched when it queued anti-actions; a matched extension ends the hunt unless it
    says ``continue="true"``. Raises :class:`FreeSwitchConfError` on a condition form this
    reader does not model (``regex=``, time conditions, nested conditions).
    """
    variables = variables or {}
    queued: list[tuple[str, str]] = []
    for ext in context.iterfind("extension"):
        if _parse_exten(ext, profile, variables, queued) and \
                ext.get("continue", "").lower() not in ("true", "yes", "on", "1"):
            break
    return queued


def _parse_exten(ext: ET.Element, profile: Mapping[str, str], variables: Mapping[str, str],
                 queued: list[tuple[str, str]]) -> bool:
    proceed = False
    for cond in ext.iterfind("condition"):
        modelled = {"field", "expression", "break"}
        if set(cond.keys()) - modelled or cond.find("condition") is not None:
            raise FreeSwitchConfError(
                f"extension {ext.get('name')!r}: condition {cond.attrib} is not modelled")
        fld, expression = cond.get("field"), cond.get("expression", "")
        brk = cond.get("break", "on-false").lower()
        match = None
        if fld is None:
            proceed, anti = True, False
        else:
            data = expand(fld, variables) if "$" in fld else profile.get(fld, "")
            match = re.search(expression, data)
            proceed, anti = match is not None, match is None
        if anti:
            for a in cond.iterfind("anti-action"):
                queued.append((a.get("application", ""), _action_data(a)))
                proceed = True
        else:
            for a in cond.iterfind("action"):
                data = _action_data(a)
                if match is not None and "(" in expression:
                    data = re.sub(r"\$(\d)", lambda m: _group(match, int(m.group(1))), data)
                queued.append((a.get("application", ""), data))
        if (not anti and brk == "on-true") or (anti and brk == "on-false") or brk == "always":
            break
    return proceed


def expand(data: str, variables: Mapping[str, str]) -> str:
    """``${name}`` from the channel's variables (nothing for an unset one), as FreeSWITCH
    expands a condition's field, and an application's data when it runs it."""
    return re.sub(r"\$\{([^}]*)\}", lambda m: variables.get(m.group(1), ""), data)


def _action_data(action: ET.Element) -> str:
    return action.text if action.text else action.get("data", "")


def _group(match: re.Match[str], n: int) -> str:
    return (match.group(n) or "") if n <= (match.re.groups or 0) else ""
