"""Routing configuration: skills, levels, strategies and escalation steps, checked at load."""

from pathlib import Path

import pytest

from ccserver.config import ConfigError, load_config

BASE = """
[acd]
skills = ["en", "billing"]
max_misses = 3
[[queues]]
name = "support"
strategy = "best_skill"
skills = { en = 70, billing = 50 }
escalation = [
  { after_seconds = 30, skills = { billing = 20 } },
  { after_seconds = 90, any = true },
  { after_seconds = 300, overflow = "backup" },
]
[[queues]]
name = "backup"
[[agents]]
id = "a1"
name = "Ann"
node = "n1"
device = "PJSIP/1001"
queues = ["support", "backup"]
skills = { en = 80, billing = 60 }
priorities = { backup = 2 }
"""


def load(tmp_path: Path, text: str):
    f = tmp_path / "cc.toml"
    f.write_text(text)
    return load_config(f, environ={})


def test_a_full_routing_configuration_loads(tmp_path):
    cfg = load(tmp_path, BASE)
    q = cfg.queue("support")
    assert (q.strategy, q.skills, cfg.acd.max_misses) == ("best_skill", {"en": 70, "billing": 50}, 3)
    assert [(s.after_seconds, s.skills, s.any, s.overflow) for s in q.escalation] == [
        (30, {"billing": 20}, False, None), (90, None, True, None), (300, None, False, "backup")]
    assert cfg.agents[0].priorities == {"backup": 2}


@pytest.mark.parametrize("old, new, message", [
    ("skills = { en = 80, billing = 60 }", "skills = { en = 80, klingon = 60 }",
     "agents[0].skills: unknown skill(s) ['klingon']"),
    ("skills = { en = 80, billing = 60 }", "skills = { en = 101 }",
     "agents.0.skills.en: Input should be less than or equal to 100"),
    ("{ billing = 20 }", "{ french = 20 }", "queues[0].escalation[0].skills: unknown skill(s)"),
    ("{ billing = 20 }", "{ billing = 90 }",
     "queues[0].escalation[0].skills: no agent of queue 'support' meets {'billing': 90}"),
    ("skills = { en = 70, billing = 50 }", "skills = { en = 90 }",
     "queues[0].skills: no agent of queue 'support' meets {'en': 90}"),
    ('overflow = "backup"', 'overflow = "nowhere"',
     "queues[0].escalation[2].overflow: unknown queue or the queue itself: 'nowhere'"),
    ("after_seconds = 90, any = true", "after_seconds = 10, any = true",
     "steps must have strictly increasing after_seconds"),
    ("any = true", "any = true, overflow = \"backup\"", "exactly one of skills, any = true, overflow"),
    ('strategy = "best_skill"', 'strategy = "random"', "queues.0.strategy: Input should be"),
    ("priorities = { backup = 2 }", "priorities = { sales = 2 }",
     "agents[0].priorities: not one of the agent's queues ['sales']"),
    ("priorities = { backup = 2 }", "priorities = { backup = 10 }",
     "agents.0.priorities.backup: Input should be less than or equal to 9"),
    ("max_misses = 3", "max_misses = 0", "acd.max_misses: Input should be greater than or equal"),
])
def test_bad_routing_configuration_is_refused_naming_the_key(tmp_path, old, new, message):
    assert old in BASE
    with pytest.raises(ConfigError) as err:
        load(tmp_path, BASE.replace(old, new))
    assert message in str(err.value)
