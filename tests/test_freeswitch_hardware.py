"""FreeSWITCH nodes in hardware/: told apart from Asterisk nodes by ``kind``, validated strictly."""

from __future__ import annotations

import pytest

from ccserver.config import ConfigError
from ccserver.hardware import FreeSwitchNodeConfig, NodeConfig, load_nodes

FS = '''name = "fs1"
kind = "freeswitch"
host = "10.0.0.20"
esl_password_env = "CCSERVER_ESL_PASSWORD_FS1"
'''
AST = '''name = "pbx1"
kind = "asterisk"
host = "10.0.0.10"
ami_user = "ccserver"
ami_secret_env = "CCSERVER_AMI_SECRET_PBX1"
'''


def test_mixed_inventory_loads_each_kind(tmp_path):
    (tmp_path / "fs1.toml").write_text(FS)
    (tmp_path / "pbx1.toml").write_text(AST)
    fs, ast = load_nodes(tmp_path)
    assert isinstance(fs, FreeSwitchNodeConfig) and isinstance(ast, NodeConfig)
    assert (fs.esl_port, fs.inbound_contexts) == (8021, ["ccserver-inbound"])
    assert fs.secret({"CCSERVER_ESL_PASSWORD_FS1": "s3cret"}) == "s3cret"
    assert "s3cret" not in repr(fs)


@pytest.mark.parametrize("extra, message", [
    ("esl_port = 70000\n", "freeswitch.esl_port: Input should be less than or equal to 65535"),
    ("ami_user = \"x\"\n", "freeswitch.ami_user: unknown key"),
    ('sound_dir = "../../etc"\n', "freeswitch.sound_dir: Value error, '../../etc' is not a plain directory"),
    ('sound_dir = "ivr/../.."\n', "freeswitch.sound_dir: Value error, 'ivr/../..' is not a plain"),
    ('sound_dir = "my prompts"\n', "freeswitch.sound_dir: Value error, 'my prompts' is not a plain"),
    ('sound_dir = "ivr\\n"\n', "freeswitch.sound_dir: Value error, 'ivr"),  # a line break
    ('sound_extension = ".wav"\n', "freeswitch.sound_extension: Value error, '.wav' is not a file extension"),
    ('sound_extension = "wav x"\n', "freeswitch.sound_extension: Value error, 'wav x' is not a file"),
])
def test_bad_freeswitch_node_names_the_key(tmp_path, extra, message):
    (tmp_path / "fs1.toml").write_text(FS + extra)
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_nodes(tmp_path)


@pytest.mark.parametrize("text, kind", [(FS, "freeswitch"), (AST, "asterisk")])
@pytest.mark.parametrize("extra, message", [
    ("reconnect_max = 0\n", "reconnect_max: Input should be greater than 0"),
    ("reconnect_max = inf\n", "reconnect_max: Input should be a finite number"),
    ("reconnect_max = 600\n", "reconnect_max: Input should be less than or equal to 300"),
    ('reconnect_max = "2s"\n', "reconnect_max: Input should be a valid number"),
    ("reconnect_reset_after = -1\n", "reconnect_reset_after: Input should be greater than or equal to 0"),
    ("reconnect_reset_after = inf\n", "reconnect_reset_after: Input should be a finite number"),
])
def test_bad_reconnect_timing_names_the_key(tmp_path, text, kind, extra, message):
    (tmp_path / "node.toml").write_text(text + extra)
    with pytest.raises(ConfigError, match=f"{kind}.{message}"):
        load_nodes(tmp_path)


def test_sound_settings_default_and_accept_plain_paths(tmp_path):
    (tmp_path / "fs1.toml").write_text(FS)
    (tmp_path / "fs2.toml").write_text(FS.replace('"fs1"', '"fs2"') +
                                       'sound_dir = "/usr/share/freeswitch/sounds/custom/"\n'
                                       'sound_extension = "sln16"\n')
    fs1, fs2 = load_nodes(tmp_path)
    assert (fs1.sound_dir, fs1.sound_extension) == ("", "wav")
    assert (fs2.sound_dir, fs2.sound_extension) == ("/usr/share/freeswitch/sounds/custom", "sln16")


def test_unset_password_variable_is_named():
    node = FreeSwitchNodeConfig(name="fs1", kind="freeswitch", host="h", esl_password_env="FS_PW")
    with pytest.raises(ConfigError, match="esl_password_env: environment variable FS_PW is not set"):
        node.secret({})
