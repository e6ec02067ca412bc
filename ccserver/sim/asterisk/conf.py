"""A reader of Asterisk's configuration syntax, for ``extensions.conf`` and ``manager.conf``.

What it reads follows ``main/config.c`` (Asterisk 22): ``[section]`` headers (with ``(!)`` for a
template and ``(name,...)`` for the templates it inherits), ``key = value`` and ``key => value``
lines (spaces around both trimmed), ``;`` comments to the end of the line unless written ``\\;``,
``;-- ... --;`` block comments, and ``#include`` / ``#tryinclude`` of another file (relative to
the including file's folder, which is Asterisk's own folder for a file in /etc/asterisk).

On top of that: the manager users of ``manager.conf`` (``main/manager.c``: ``read``, ``write``,
``eventfilter(...)`` keys) and the dialplan of ``extensions.conf`` (``pbx/pbx_config.c``:
``exten`` / ``same`` with numbered or ``n`` priorities and ``(label)``s, ``include``), and how
Asterisk picks the extension for a dialed name (``main/pbx.c``: an exact name before a pattern,
``_`` patterns with ``X Z N [..] . !``, then the included contexts in order).

Anything this reader does not know raises :class:`ConfError` naming the file and line: a PBX
file that only looks right must fail here, not on a live node.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .ami_privileges import may_send, write_classes


#: the manager.conf ccserver ships (the simulator's AMI user is read from it by default)
SHIPPED_MANAGER_CONF = Path(__file__).resolve().parents[3] / "dialplans" / "asterisk" / "manager.conf"


class ConfError(ValueError):
    """A configuration file this reader (and so possibly Asterisk) cannot read."""


@dataclass(frozen=True, slots=True)
class Entry:
    key: str
    value: str
    #: written ``key => value`` (an object line, as dialplan lines are)
    arrow: bool
    where: str


@dataclass(slots=True)
class Section:
    name: str
    entries: list[Entry] = field(default_factory=list)
    template: bool = False
    where: str = ""

    def values(self, key: str) -> list[str]:
        return [e.value for e in self.entries if e.key == key]

    def get(self, key: str, default: str | None = None) -> str | None:
        """The last value of ``key`` (Asterisk keeps the last of a repeated setting)."""
        found = self.values(key)
        return found[-1] if found else default


_SECTION = re.compile(r"\[([^\]]+)\]\s*(?:\(([^)]*)\))?")
_INCLUDE = re.compile(r"#(include|tryinclude)\s+(?:\"([^\"]+)\"|<([^>]+)>|(\S+))")


def _strip_comment(line: str, in_block: bool) -> tuple[str, bool]:
    """``line`` without its comments; whether a ``;--`` block comment is still open after it."""
    out, i = [], 0
    while i < len(line):
        if in_block:
            end = line.find("--;", i)
            if end < 0:
                return "".join(out), True
            i, in_block = end + 3, False
            continue
        c = line[i]
        if c == "\\" and line[i + 1:i + 2] == ";":
            out.append(";")
            i += 2
        elif c == ";":
            if line.startswith(";--", i):
                i, in_block = i + 3, True
            else:
                break
        else:
            out.append(c)
            i += 1
    return "".join(out), in_block


def parse(text: str, source: str = "<text>", base: Path | None = None,
          _sections: list[Section] | None = None, _depth: int = 0) -> list[Section]:
    """The sections of config ``text``; ``#include`` names are read from ``base`` (the folder of
    the file ``text`` came from). Lines before any section raise, as Asterisk refuses them."""
    sections = [] if _sections is None else _sections
    if _depth > 10:
        raise ConfError(f"{source}: #include nested more than 10 deep (a file including itself?)")
    in_block = False
    for lineno, raw in enumerate(text.splitlines(), 1):
        where = f"{source}:{lineno}"
        line, in_block = _strip_comment(raw, in_block)
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            m = _INCLUDE.fullmatch(line)
            if m is None:
                raise ConfError(f"{where}: cannot read directive {raw.strip()!r} (only #include "
                                "and #tryinclude are understood; #exec is never run)")
            name = next(g for g in m.groups()[1:] if g)
            path = (base or Path(".")) / name
            if not path.is_file():
                if m.group(1) == "tryinclude":
                    continue
                raise ConfError(f"{where}: #include {name!r}: no such file {path}")
            parse(path.read_text(), str(path), path.parent, sections, _depth + 1)
            continue
        if line.startswith("["):
            m = _SECTION.fullmatch(line)
            if m is None:
                raise ConfError(f"{where}: cannot read section header {raw.strip()!r}")
            sec = Section(m.group(1).strip(), where=where)
            for opt in (o.strip() for o in (m.group(2) or "").split(",") if o.strip()):
                if opt == "!":
                    sec.template = True
                elif opt == "+":
                    raise ConfError(f"{where}: [{sec.name}](+) (adding to a section) is not "
                                    "understood here")
                else:
                    template = next((s for s in reversed(sections) if s.name == opt), None)
                    if template is None:
                        raise ConfError(f"{where}: [{sec.name}] inherits unknown template {opt!r}")
                    sec.entries.extend(template.entries)
            sections.append(sec)
            continue
        if not sections:
            raise ConfError(f"{where}: {raw.strip()!r} outside any [section]")
        key, sep, value = line.partition("=")
        if not sep:
            raise ConfError(f"{where}: {raw.strip()!r} is not 'key = value'")
        arrow = value.startswith(">")
        sections[-1].entries.append(Entry(key.strip(), (value[1:] if arrow else value).strip(),
                                          arrow, where))
    return sections


def load(path: Path | str) -> list[Section]:
    """Read a config file and what it ``#include``s."""
    path = Path(path)
    return parse(path.read_text(), str(path), path.parent)


# -- manager.conf ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ManagerUser:
    """One ``[user]`` of manager.conf, as ``main/manager.c`` reads it."""

    name: str
    secret: str | None
    read: frozenset[str]
    write: frozenset[str]
    #: the match criteria of each ``eventfilter(...)`` key, in order (its value is the regex)
    eventfilters: tuple[tuple[str, str], ...]

    def may_send(self, action: str) -> bool:
        """Whether Asterisk 22 lets this user send ``action`` (KeyError: no such action)."""
        return may_send(self.write, action)


def manager_users(sections: list[Section]) -> dict[str, ManagerUser]:
    """Every user of a manager.conf (``[general]`` and templates are not users)."""
    users = {}
    for sec in sections:
        if sec.template or sec.name == "general":
            continue
        filters = tuple((e.key[len("eventfilter"):], e.value) for e in sec.entries
                        if e.key.startswith("eventfilter"))
        users[sec.name] = ManagerUser(sec.name, sec.get("secret"), write_classes(sec.get("read", "")),
                                      write_classes(sec.get("write", "")), filters)
    return users


def manager_user(path: Path | str, name: str) -> ManagerUser:
    """User ``name`` of the manager.conf at ``path``; ConfError if it has none of that name."""
    if not Path(path).is_file():
        raise ConfError(f"{path}: no such manager.conf (the simulator reads its AMI user's "
                        "write classes there; pass ami_write to give them)")
    user = manager_users(load(path)).get(name)
    if user is None:
        raise ConfError(f"{path}: no manager user [{name}]")
    return user


# -- extensions.conf -------------------------------------------------------------------------

@dataclass
class Extension:
    pattern: str
    #: priority -> (application, raw data)
    steps: dict[int, tuple[str, str]] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)


@dataclass
class Dialplan:
    globals: dict[str, str]
    contexts: dict[str, list[Extension]]
    #: context -> the contexts it includes, in order
    includes: dict[str, list[str]] = field(default_factory=dict)

    def find(self, context: str, exten: str, _seen: frozenset[str] = frozenset()) -> Extension | None:
        """The extension Asterisk runs for ``exten`` in ``context``: an exact name first, else
        the most specific matching pattern, else the same search in each included context."""
        candidates = [e for e in self.contexts.get(context, []) if matches(e.pattern, exten)]
        exact = [e for e in candidates if not e.pattern.startswith("_")]
        if exact:
            return exact[0]
        if candidates:
            return min(candidates, key=lambda e: _specificity(e.pattern))
        for inc in self.includes.get(context, []):
            if inc not in _seen:
                found = self.find(inc, exten, _seen | {context})
                if found is not None:
                    return found
        return None

    def calls(self) -> list[tuple[str, str]]:
        """Every (application, raw data) of every context."""
        return [step for exts in self.contexts.values() for e in exts for step in e.steps.values()]


_PRIORITY = re.compile(r"^(\d+|n)(?:\(([A-Za-z0-9_-]+)\))?$")


def _split_top(text: str, limit: int) -> list[str]:
    """Split at the first ``limit`` commas that are outside brackets (a pattern's ``[,]``)."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(text):
        if c in "[(":
            depth += 1
        elif c in "])":
            depth -= 1
        elif c == "," and depth == 0 and len(parts) < limit:
            parts.append(text[start:i])
            start = i + 1
    return [*parts, text[start:]]


def dialplan(sections: list[Section]) -> Dialplan:
    """The contexts of an extensions.conf (``[general]`` settings skipped, ``[globals]`` kept)."""
    plan = Dialplan({}, {})
    for sec in sections:
        if sec.name == "general":
            continue
        if sec.name == "globals":
            plan.globals.update((e.key, e.value) for e in sec.entries)
            continue
        exts = plan.contexts.setdefault(sec.name, [])
        last: tuple[Extension, int] | None = None
        for e in sec.entries:
            if e.key == "include":
                plan.includes.setdefault(sec.name, []).append(e.value)
                continue
            if e.key == "exten":
                parts = _split_top(e.value, 2)
                if len(parts) != 3:
                    raise ConfError(f"{e.where}: exten needs pattern,priority,application")
                pattern, priority, call = (p.strip() for p in parts)
                ext = next((x for x in exts if x.pattern == pattern), None)
                if ext is None:
                    ext = Extension(pattern)
                    exts.append(ext)
                previous = max(ext.steps, default=0)
            elif e.key == "same":
                if last is None:
                    raise ConfError(f"{e.where}: same => before any exten in [{sec.name}]")
                ext, previous = last
                parts = _split_top(e.value, 1)
                if len(parts) != 2:
                    raise ConfError(f"{e.where}: same needs priority,application")
                priority, call = (p.strip() for p in parts)
            else:
                raise ConfError(f"{e.where}: {e.key!r} is not a dialplan line here "
                                "(exten, same, include)")
            m = _PRIORITY.match(priority)
            if m is None:
                raise ConfError(f"{e.where}: cannot read priority {priority!r}")
            number = previous + 1 if m.group(1) == "n" else int(m.group(1))
            if number in ext.steps:
                raise ConfError(f"{e.where}: priority {number} of {ext.pattern} in [{sec.name}] "
                                "given twice")
            if m.group(2):
                ext.labels[m.group(2)] = number
            app, paren, data = call.partition("(")
            if paren and not data.endswith(")"):
                raise ConfError(f"{e.where}: unbalanced parentheses in {call!r}")
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", app.strip()):
                raise ConfError(f"{e.where}: {app.strip()!r} is not an application name")
            ext.steps[number] = (app.strip(), data[:-1] if paren else "")
            last = (ext, number)
    return plan


def load_dialplan(path: Path | str) -> Dialplan:
    return dialplan(load(path))


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = [], 1
    while i < len(pattern):
        c = pattern[i]
        if c in "Xx":
            out.append("[0-9]")
        elif c in "Zz":
            out.append("[1-9]")
        elif c in "Nn":
            out.append("[2-9]")
        elif c == "[":
            end = pattern.index("]", i)
            out.append("[" + re.sub(r"([\\\]^])", r"\\\1", pattern[i + 1:end]) + "]")
            i = end
        elif c == ".":  # one or more of anything; Asterisk ignores what follows
            out.append(".+")
            break
        elif c == "!":  # zero or more of anything
            out.append(".*")
            break
        elif c != "-":  # a dash outside brackets is only for reading (_555-XXXX)
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))


def matches(pattern: str, exten: str) -> bool:
    """Asterisk's rule: ``_`` starts a pattern; otherwise the name must be equal."""
    if not pattern.startswith("_"):
        return pattern == exten
    return _pattern_regex(pattern).fullmatch(exten) is not None


def _specificity(pattern: str) -> list[int]:
    """How many characters each position accepts (fewer sorts first, as Asterisk prefers)."""
    sizes = []
    for part in re.findall(r"\[[^\]]*\]|.", pattern[1:]):
        if part in ".!":
            sizes.append(10**6 + (part == "!"))
        else:
            sizes.append(sum(1 for c in map(chr, range(32, 127)) if _pattern_regex("_" + part).fullmatch(c)))
    return sizes
