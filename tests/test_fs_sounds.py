"""Prompt names on a real FreeSWITCH: flows name sounds the Asterisk way (``hello-world``); each
node's ``sound_dir`` and ``sound_extension`` turn them into files ``playback`` can find."""

from __future__ import annotations

import pytest
from test_e2e_asterisk import call_id, make_rig  # noqa: F401  (fixture)

from ccserver.pbx.freeswitch.outbound import BEEP, SoundFiles
from ccserver.sim.asterisk import CallerScript


@pytest.mark.parametrize("name, files, path", [
    ("hello-world", SoundFiles(), "hello-world.wav"),
    ("hello-world", SoundFiles("ivr", "wav"), "ivr/hello-world.wav"),
    ("digits/1", SoundFiles("/opt/prompts", "sln16"), "/opt/prompts/digits/1.sln16"),
    ("hello-world", SoundFiles("ivr", ""), "ivr/hello-world"),  # FreeSWITCH adds the codec
    # already FreeSWITCH's: absolute, with an extension, a stream
    ("/opt/prompts/custom/promo", SoundFiles("ivr"), "/opt/prompts/custom/promo"),
    ("custom/promo.mp3", SoundFiles("ivr"), "custom/promo.mp3"),
    (BEEP, SoundFiles("ivr"), BEEP),
    ("silence_stream://250", SoundFiles("ivr"), "silence_stream://250"),
])
def test_sound_names_become_node_paths(name, files, path):
    assert files.path(name) == path


@pytest.mark.parametrize("make_rig", ["freeswitch"], indirect=True)
@pytest.mark.parametrize("node, prefix", [
    ({}, ""),  # defaults: sound_dir "" and sound_extension "wav"
    ({"sound_dir": "ivr/", "sound_extension": "wav"}, "ivr/"),
])
async def test_playback_gets_the_nodes_sound_path(make_rig, node, prefix):  # noqa: F811
    rig = await make_rig(**node)
    call = rig.sim.place_call(CallerScript(digits=["1"], talk_time=0.2))
    assert await call.wait(15) == "answered"
    ran = [(app, arg) for uuid, app, arg in rig.sim.executed if uuid == call.uniqueid]
    assert ("playback", f"{prefix}hello-world.wav") in ran
    (menu,) = [arg for app, arg in ran if app == "play_and_get_digits"]
    assert f" {prefix}demo-instruct.wav silence_stream://250 " in menu


#: ``main``'s prompts as a FreeSWITCH install keeps them: under ``$${sounds_dir}/<language>/``
MAIN_PROMPTS_EN = {f"en/{name}.wav" for name in
                   ("hello-world", "demo-instruct", "invalid", "vm-sorry", "one-moment-please",
                    "pls-hold-while-try")}


def sounds(files: set[str]):
    def on_sim(sim):
        sim.sound_files = files
    return on_sim


@pytest.mark.parametrize("make_rig", ["freeswitch"], indirect=True)
async def test_the_flows_language_makes_prompts_play_from_sounds_language(make_rig):  # noqa: F811
    rig = await make_rig(on_sim=sounds(MAIN_PROMPTS_EN))
    call = rig.sim.place_call(CallerScript(digits=["1"], talk_time=0.2))
    assert await call.wait(15) == "answered"
    ran = [(app, arg) for uuid, app, arg in rig.sim.executed if uuid == call.uniqueid]
    assert ("set", "sound_prefix=${sounds_dir}/en") in ran
    assert ran.index(("set", "sound_prefix=${sounds_dir}/en")) < ran.index(("playback", "hello-world.wav"))
    row = await rig.cdr(call_id(call))
    assert list(row["ivr_path"])[:3] == ["greeting", "main_menu", "main_menu:1"]  # no missed prompt
    assert rig.server.api.api.source.alerts() == ()


@pytest.mark.parametrize("make_rig", ["freeswitch"], indirect=True)
async def test_a_missing_prompt_is_logged_once_per_prompt_and_node_and_alerted(make_rig, caplog):  # noqa: F811
    rig = await make_rig(on_sim=sounds(MAIN_PROMPTS_EN - {"en/demo-instruct.wav", "en/hello-world.wav"}))
    for _ in range(2):
        call = rig.sim.place_call(CallerScript(digits=["1"], talk_time=0.1))
        assert await call.wait(15) == "answered"
    # the menu's prompt could not open: play_and_get_digits came back at once, three times a call
    row = await rig.cdr(call_id(call))
    assert "main_menu:timeout" in row["ivr_path"]
    lines = [r.getMessage() for r in caplog.records if "not found on node" in r.getMessage()]
    assert len(lines) == 2, lines
    assert any("'demo-instruct' of flow node main_menu" in line for line in lines)
    assert any("'hello-world' of flow node greeting" in line for line in lines)
    alerts = rig.server.api.api.source.alerts()
    assert len(alerts) == 2 and any("'demo-instruct' (flow node main_menu)" in a for a in alerts)
