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
