"""Configuration: TOML + environment overrides, validated with errors naming key and reason."""

import tomllib
from pathlib import Path

import pytest

from ccserver.cli import main
from ccserver.config import ConfigError, load_config
from ccserver.hardware import FreeSwitchNodeConfig, NodeConfig, load_nodes


def test_defaults_without_file():
    cfg = load_config(environ={})
    assert cfg.database.dsn == ""
    assert cfg.acd.ring_timeout == 15
    assert [q.name for q in cfg.queues] == ["support"]
    assert cfg.acd.pause_reasons == ["break", "lunch", "meeting", "training", "after call work"]


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
        ("[acd]\npause_reasons = ['lunch', 'lunch']\n", {}, "acd.pause_reasons: Value error, must be unique"),
        ("[acd]\npause_reasons = []\n", {}, "acd.pause_reasons: List should have at least 1 item"),
        ("[acd]\npause_reasons = ['a/b']\n", {}, "acd.pause_reasons.0: String should match pattern"),
        # the reasons ccserver sets itself are not an agent's choice
        ("[acd]\npause_reasons = ['lunch', 'shutdown']\n", {}, "acd.pause_reasons: Value error, ['shutdown']"),
        ("[acd]\npause_reasons = ['unavailable']\n", {}, "acd.pause_reasons: Value error, ['unavailable']"),
        ("[acd]\nrona_pause_reason = 'missed'\npause_reasons = ['missed']\n", {},
         "acd.pause_reasons: Value error, ['missed']"),
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


@pytest.mark.parametrize("kind, model", [("asterisk", NodeConfig), ("freeswitch", FreeSwitchNodeConfig)])
def test_repo_example_nodes_are_valid_and_show_every_key(tmp_path: Path, kind, model):
    example = Path(__file__).parents[1] / "hardware" / "examples" / f"{kind}.toml.example"
    (tmp_path / "node.toml").write_text(example.read_text())
    [node] = load_nodes(tmp_path)
    assert type(node) is model
    assert set(model.model_fields) - set(tomllib.loads(example.read_text())) == set()


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


def test_string_keys_from_the_environment_keep_their_text():
    cfg = load_config(environ={
        "CCSERVER_SERVER__AGI_HOST": "true", "CCSERVER_DATABASE__DSN": "12", "CCSERVER_HARDWARE_DIR": "2024",
        "CCSERVER_IVR__ROUTES__5551000": "true", "CCSERVER_SIMULATOR__ENABLED": "on",
        # other keys are still TOML values
        "CCSERVER_SERVER__AGI_PORT": "4574", "CCSERVER_ACD__SKILLS": '["en", "fr"]',
        "CCSERVER_API__COOKIE_SECURE": "true", "CCSERVER_SIMULATOR__SEED": "7",
    })
    assert (cfg.server.agi_host, cfg.database.dsn, cfg.hardware_dir) == ("true", "12", Path("2024"))
    assert cfg.ivr.routes["5551000"] == "true" and cfg.simulator.enabled == "on"
    assert (cfg.server.agi_port, cfg.acd.skills, cfg.api.cookie_secure, cfg.simulator.seed) == (
        4574, ["en", "fr"], True, 7)
    with pytest.raises(ConfigError, match="server.agi_port"):
        load_config(environ={"CCSERVER_SERVER__AGI_PORT": "high"})


AGENT = 'id = "{id}"\nname = "A"\nnode = "{node}"\ndevice = "PJSIP/{id}"\nqueues = {queues}\n'
NODE_FILE = 'name = "{name}"\nkind = "asterisk"\nhost = "10.0.0.1"\nami_user = "cc"\nami_secret_env = "{env}"\n'


def _site(tmp_path: Path, body: str, nodes: dict[str, str]) -> Path:
    hw = tmp_path / "hw"
    hw.mkdir(exist_ok=True)
    for name, env in nodes.items():
        (hw / f"{name}.toml").write_text(NODE_FILE.format(name=name, env=env))
    site = tmp_path / "cc.toml"
    site.write_text(f'hardware_dir = "{hw}"\n' + body)
    return site


def _check(site: Path, capsys) -> tuple[int, str, str]:
    code = main(["--config", str(site), "check-config"])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_check_config_names_each_node_secret_that_is_not_set(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.setenv("CC_TEST_SECRET_PBX1", "s3cret-value-pbx1")
    monkeypatch.delenv("CC_TEST_SECRET_PBX2", raising=False)
    body = "[[queues]]\nname = \"support\"\n[[agents]]\n" + AGENT.format(id="1", node="pbx1", queues='["support"]')
    site = _site(tmp_path, body, {"pbx1": "CC_TEST_SECRET_PBX1", "pbx2": "CC_TEST_SECRET_PBX2"})
    code, out, err = _check(site, capsys)
    assert code == 2 and out == ""
    assert "hardware node 'pbx2': ami_secret_env: environment variable CC_TEST_SECRET_PBX2 is not set" in err
    assert "pbx1" not in err and "s3cret" not in err
    monkeypatch.setenv("CC_TEST_SECRET_PBX2", "s3cret-value-pbx2")
    code, out, err = _check(site, capsys)
    assert (code, err) == (0, "") and "configuration OK: 1 queue(s), 1 agent(s), 2 PBX node(s)" in out
    assert "s3cret" not in out


def test_check_config_refuses_agents_on_unknown_nodes(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.setenv("CC_TEST_SECRET_PBX1", "x")
    body = ("[[queues]]\nname = \"support\"\n[[agents]]\n" + AGENT.format(id="1", node="pbx1", queues='["support"]')
            + 'devices = { fs9 = "user/1" }\n[[agents]]\n' + AGENT.format(id="2", node="pbx3", queues='["support"]'))
    code, _, err = _check(_site(tmp_path, body, {"pbx1": "CC_TEST_SECRET_PBX1"}), capsys)
    assert code == 2
    assert "agents[0].devices: ['fs9'] not PBX node(s)" in err
    assert "agents[1].node: 'pbx3' is not a PBX node" in err and "nodes: ['pbx1']" in err


def test_agents_of_the_simulator_node_are_accepted_only_when_it_runs(tmp_path: Path, capsys):
    body = "[[queues]]\nname = \"support\"\n[[agents]]\n" + AGENT.format(id="1", node="sim", queues='["support"]')
    code, out, err = _check(_site(tmp_path, body, {}), capsys)
    assert code == 0, err
    code, _, err = _check(_site(tmp_path, '[simulator]\nenabled = "off"\n' + body, {}), capsys)
    assert code == 2 and "agents[0].node: 'sim' is not a PBX node" in err and "no node is listed" in err


def test_a_queue_no_agent_serves_is_refused(tmp_path: Path, capsys, monkeypatch):
    body = ('[[queues]]\nname = "support"\n[[queues]]\nname = "sales"\n[[agents]]\n'
            + AGENT.format(id="1", node="sim", queues='["support"]'))
    code, _, err = _check(_site(tmp_path, body, {}), capsys)
    assert code == 2 and "queues[1]: queue 'sales' has no agents" in err
    # no agents at all: only the simulator's demo agents could serve
    monkeypatch.setenv("CC_TEST_SECRET_PBX1", "x")
    code, _, err = _check(_site(tmp_path, '[[queues]]\nname = "support"\n', {"pbx1": "CC_TEST_SECRET_PBX1"}), capsys)
    assert code == 2 and "queues[0]: queue 'support' has no agents (none are configured)" in err


def test_check_config_warns_of_a_carrier_context_listed_in_inbound_contexts(tmp_path: Path, capsys, caplog,
                                                                            monkeypatch):
    # README step 1 sends calls on with Goto(ccserver-inbound,...): ccserver tracks them there, so
    # a listed carrier context only adds the calls it sends elsewhere
    monkeypatch.setenv("CC_TEST_SECRET_PBX1", "x")
    monkeypatch.setenv("CC_TEST_SECRET_PBX2", "y")
    body = "[[queues]]\nname = \"support\"\n[[agents]]\n" + AGENT.format(id="1", node="pbx1", queues='["support"]')
    site = _site(tmp_path, body, {"pbx1": "CC_TEST_SECRET_PBX1", "pbx2": "CC_TEST_SECRET_PBX2"})
    with (tmp_path / "hw" / "pbx2.toml").open("a") as f:
        f.write('inbound_contexts = ["from-carrier", "ccserver-inbound"]\n')
    code, out, _ = _check(site, capsys)
    assert code == 0 and "configuration OK" in out
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "hardware node 'pbx2': inbound_contexts lists 'from-carrier': every channel born there is taken "
        "for a ccserver call, also one that context sends elsewhere; a call sent on with "
        "Goto(ccserver-inbound,...) is tracked without it"]
