"""Configuration: TOML + environment overrides, validated with errors naming key and reason."""

from pathlib import Path

import pytest

from ccserver.cli import main
from ccserver.config import ConfigError, load_config
from ccserver.hardware import load_nodes


def test_defaults_without_file():
    cfg = load_config(environ={})
    assert cfg.database.dsn == ""
    assert cfg.acd.ring_timeout == 15
    assert [q.name for q in cfg.queues] == ["support"]


def test_file_and_env_override(tmp_path: Path):
    f = tmp_path / "cc.toml"
    f.write_text('[acd]\nring_timeout = 20\n[[queues]]\nname = "support"\nwrapup_seconds = 3\n')
    cfg = load_config(f, environ={"CCSERVER_ACD__RING_TIMEOUT": "25", "CCSERVER_DATABASE__DSN": "postgresql://x/y"})
    assert cfg.acd.ring_timeout == 25
    assert cfg.database.dsn == "postgresql://x/y"
    assert cfg.queues[0].wrapup_seconds == 3


@pytest.mark.parametrize(
    "text, env, expected",
    [
        ("[acd]\nring_timeout = 0\n", {}, "acd.ring_timeout"),
        ("[acd]\nring_tmeout = 5\n", {}, "acd.ring_tmeout: unknown key"),
        ("", {"CCSERVER_CDR__FLUSH_INTERVAL": "5"}, "cdr.flush_interval"),
        ("[[queues]]\nname='a'\n[[queues]]\nname='a'\n", {}, "queue names must be unique"),
        ("[[agents]]\nid='1'\nname='x'\nnode='n'\ndevice='PJSIP/1'\nqueues=['nope']\n", {}, "agents[0].queues"),
        ("[database]\npool_min = 3\npool_max = 2\n", {}, "pool_max must be >= pool_min"),
        ("this is not toml", {}, "not valid TOML"),
        ("[server]\nagi_port = 70000\n", {}, "server.agi_port"),
    ],
)
def test_invalid_values_name_the_key(tmp_path: Path, text, env, expected):
    f = tmp_path / "cc.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(f, environ=env)
    assert expected in str(err.value)


def test_missing_file_is_an_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml", environ={})


def test_cli_refuses_bad_config_with_exit_2(tmp_path: Path, capsys, monkeypatch):
    f = tmp_path / "cc.toml"
    f.write_text("[acd]\nring_timeout = -1\n")
    assert main(["--config", str(f), "check-config"]) == 2
    assert "acd.ring_timeout" in capsys.readouterr().err


def test_hardware_nodes_and_secret_from_env(tmp_path: Path):
    (tmp_path / "pbx1.toml").write_text(
        'name="pbx1"\nkind="asterisk"\nhost="10.0.0.1"\nami_user="cc"\nami_secret_env="PBX1_SECRET"\n'
        '[[spans]]\nname="e1-0"\nkind="e1"\nchannels=30\n'
    )
    [node] = load_nodes(tmp_path)
    assert node.spans[0].channels == 30
    assert node.secret({"PBX1_SECRET": "s3cr3t-value"}) == "s3cr3t-value"
    assert "s3cr3t" not in repr(node)
    with pytest.raises(ConfigError, match="PBX1_SECRET is not set"):
        node.secret({})


def test_hardware_refuses_a_literal_secret(tmp_path: Path):
    (tmp_path / "bad.toml").write_text(
        'name="pbx1"\nkind="asterisk"\nhost="h"\nami_user="cc"\nami_secret_env="X"\nami_secret="plain"\n'
    )
    with pytest.raises(ConfigError, match="ami_secret: unknown key"):
        load_nodes(tmp_path)


def test_repo_example_node_is_valid(tmp_path: Path):
    example = Path(__file__).parents[1] / "hardware" / "examples" / "asterisk.toml.example"
    (tmp_path / "pbx1.toml").write_text(example.read_text())
    [node] = load_nodes(tmp_path)
    assert node.name == "pbx1"


def test_secret_variables_named_by_node_files_are_not_config_keys():
    # the README and hardware/examples name secrets like CCSERVER_AMI_SECRET_PBX1
    cfg = load_config(environ={"CCSERVER_AMI_SECRET_PBX1": "s3cret", "CCSERVER_HARDWARE_DIR": "hw"})
    assert str(cfg.hardware_dir) == "hw"
    with pytest.raises(ConfigError, match="databse: unknown key"):  # a typo'd section still fails
        load_config(environ={"CCSERVER_DATABSE__DSN": "postgresql://x/y"})


def test_a_secret_file_trailing_newline_is_not_part_of_the_secret(tmp_path: Path):
    (tmp_path / "pbx1.toml").write_text(
        'name="pbx1"\nkind="asterisk"\nhost="h"\nami_user="cc"\nami_secret_env="PBX1_SECRET"\n')
    [node] = load_nodes(tmp_path)
    assert node.secret({"PBX1_SECRET": "s3cret-value\n"}) == "s3cret-value"
    with pytest.raises(ConfigError, match="line break") as err:
        node.secret({"PBX1_SECRET": "s3cret\nvalue"})
    assert "s3cret" not in str(err.value)
