"""The IVR flow admin API over a real server, Postgres and HTTP: roles, drafts, checks, publish,
diff, simulate, rollback, overrides, the audit log, and refused bodies that change nothing."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import yaml
from test_api_rig import api_rig  # noqa: F401  (fixture)

from ccserver.ivr.flow import NODE_TYPES
from ccserver.ivr.store import Actor, FlowStore

ROOT = Path(__file__).resolve().parents[1]
MAIN = yaml.safe_load((ROOT / "ivr_flows" / "main.yaml").read_text())
F = "/api/v1/flows"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _call(s, method: str, path: str, token: str, **kw):
    async with s.request(method, path, headers=_bearer(token), **kw) as r:
        return r.status, await r.json()


async def test_admin_edits_checks_publishes_and_rolls_back(api_rig):  # noqa: F811
    admin, sup = await api_rig.token("admin"), await api_rig.token("sup_a")
    async with api_rig.client() as s:
        status, v1 = await _call(s, "POST", f"{F}/main/versions", admin, json={"document": MAIN})
        assert status == 201 and (v1["version"], v1["status"], v1["problems"]) == (1, "draft", [])
        status, check = await _call(s, "POST", f"{F}/main/versions/1/check", admin)
        assert status == 200 and check == {"ok": True, "problems": []}
        status, pub = await _call(s, "POST", f"{F}/main/versions/1/publish", admin, json={"did": "*"})
        assert status == 200 and (pub["did"], pub["flow"], pub["version"]) == ("*", "main", 1)

        # a broken draft is saved with its problems, located on the node; publishing it is refused
        broken = copy.deepcopy(MAIN)
        broken["nodes"]["main_menu"]["options"]["3"] = "nowhere"
        status, v2 = await _call(s, "POST", f"{F}/main/versions", admin, json={"document": broken})
        assert status == 201 and v2["status"] == "draft"
        assert v2["problems"] == [{"field": "nodes.main_menu.options.3", "node": "main_menu",
                                   "reason": "unknown node 'nowhere'"}]
        status, err = await _call(s, "POST", f"{F}/main/versions/2/publish", admin, json={"did": "*"})
        assert status == 409 and err["fields"][0]["field"] == "nodes.main_menu.options.3"

        # fixed as YAML text, checked, published; the diff names the one changed option
        fixed = copy.deepcopy(MAIN)
        fixed["nodes"]["main_menu"]["options"]["1"] = "to_support_priority"
        status, v2 = await _call(s, "PUT", f"{F}/main/versions/2", admin, json={"yaml": yaml.safe_dump(fixed)})
        assert status == 200 and v2["problems"] == [] and v2["status"] == "draft"
        status, diff = await _call(s, "GET", f"{F}/main/diff?old=1&new=2", sup)
        assert status == 200 and diff["changes"] == [
            {"path": "nodes.main_menu.options.1", "kind": "changed", "old": "to_support", "new": "to_support_priority"}
        ]
        assert (await _call(s, "POST", f"{F}/main/versions/2/check", admin))[1]["ok"] is True
        assert (await _call(s, "POST", f"{F}/main/versions/2/publish", admin, json={"did": "*"}))[0] == 200

        status, sim = await _call(s, "POST", f"{F}/main/versions/2/simulate", sup, json={"digits": "1"})
        assert status == 200 and sim["queue"] == "support" and sim["priority"] == 1
        assert sim["path"][:3] == ["greeting", "main_menu", "main_menu:1"] and sim["ending"] == "queue"
        assert [p["value"] for p in sim["prompts"]] == ["hello-world", "demo-instruct"]

        status, listed = await _call(s, "GET", F, sup)
        assert listed == [{"flow": "main", "latest_version": 2, "latest_status": "published",
                           "published": [["*", 2]]}]
        status, pub = await _call(s, "POST", "/api/v1/flow-publications/*/rollback", admin)
        assert status == 200 and pub["version"] == 1
        status, versions = await _call(s, "GET", f"{F}/main/versions", sup)
        assert [v["status"] for v in versions] == ["published", "rolled_back"]

        status, ov = await _call(s, "PUT", "/api/v1/flow-overrides/emergency", admin, json={"active": True})
        assert status == 200 and ov == {"name": "emergency", "active": True}
        assert (await _call(s, "GET", "/api/v1/flow-overrides", sup))[1] == [{"name": "emergency", "active": True}]

    rows = await api_rig.rows("SELECT username, action, target, outcome, detail FROM audit_log "
                              "WHERE action LIKE 'ivr.%' ORDER BY id")
    actions = [(r["action"], r["target"], r["outcome"]) for r in rows]
    # one row per change (the store's, with the diff), and the refused publish
    assert actions == [
        ("ivr.flow.create_draft", "main@1", "ok"), ("ivr.flow.check", "main@1", "ok"),
        ("ivr.flow.publish", "main@1", "ok"), ("ivr.flow.create_draft", "main@2", "ok"),
        ("ivr.flow.publish", "main,2", "failed"), ("ivr.flow.update_draft", "main@2", "ok"),
        ("ivr.flow.check", "main@2", "ok"), ("ivr.flow.publish", "main@2", "ok"),
        ("ivr.flow.rollback", "main@1", "ok"), ("ivr.override.set", "emergency", "ok"),
    ]
    assert all(r["username"] == "admin" for r in rows)
    update = json.loads(rows[5]["detail"])
    assert {"path": "nodes.main_menu.options.3", "old": "nowhere"} in update["diff"]


async def test_names_the_running_configuration_lacks_are_problems_and_block_publish(api_rig):  # noqa: F811
    admin = await api_rig.token("admin")
    flow = copy.deepcopy(MAIN)
    flow.update(start="prefs", languages=["en", "fr"])
    flow["nodes"]["prefs"] = {"type": "set", "language": "fr", "skills": {"english": 50, "french": 50},
                              "next": "greeting"}
    flow["nodes"]["to_support"]["queue"] = "salse"
    expected = [
        {"field": "nodes.to_support.queue", "node": "to_support", "reason": "queue 'salse' is not configured"},
        {"field": "nodes.prefs.skills.french", "node": "prefs", "reason": "skill 'french' is not in acd.skills"},
        {"field": "nodes.prefs.language", "node": "prefs",
         "reason": "'fr' is not in acd.skills (a language is a skill agents have)"},
    ]
    async with api_rig.client() as s:
        status, v1 = await _call(s, "POST", f"{F}/main/versions", admin, json={"document": flow})
        assert status == 201 and v1["problems"] == expected
        status, check = await _call(s, "POST", f"{F}/main/versions/1/check", admin)
        # (the stored document's nodes come back in jsonb's key order)
        assert not check["ok"] and sorted(check["problems"], key=str) == sorted(expected, key=str)

        # checked where the site was not known (a script on the store), the publish still refuses it
        store, actor = FlowStore(api_rig.server.api.api.pool), Actor("script", "admin")
        await store.create_draft("main", flow, actor)
        assert (await store.check("main", 2, actor)).ok
        status, err = await _call(s, "POST", f"{F}/main/versions/2/publish", admin, json={"did": "*"})
        assert status == 409 and err["error"] == "version: main@2 fails the checks"
        assert sorted(f["field"] for f in err["fields"]) == sorted(p["field"] for p in expected)

        del flow["nodes"]["prefs"]["language"], flow["nodes"]["prefs"]["skills"]["french"]
        flow["nodes"]["to_support"]["queue"] = "sales"
        assert (await _call(s, "PUT", f"{F}/main/versions/2", admin, json={"document": flow}))[1]["problems"] == []
        assert (await _call(s, "POST", f"{F}/main/versions/2/check", admin))[1]["ok"] is True
        assert (await _call(s, "POST", f"{F}/main/versions/2/publish", admin, json={"did": "*"}))[0] == 200
    assert [(r["flow"], r["version"]) for r in await api_rig.rows("SELECT * FROM ivr_publications")] == [("main", 2)]


async def test_the_publish_dialog_diffs_against_another_flow_on_the_did(api_rig):  # noqa: F811
    admin, sup = await api_rig.token("admin"), await api_rig.token("sup_a")
    closed = {"name": "closed", "start": "bye", "nodes": {"bye": {"type": "hangup", "prompt": "goodbye"}}}
    async with api_rig.client() as s:
        assert (await _call(s, "POST", f"{F}/main/versions", admin, json={"document": MAIN}))[0] == 201
        assert (await _call(s, "POST", f"{F}/main/versions/1/check", admin))[1]["ok"] is True
        assert (await _call(s, "POST", f"{F}/main/versions/1/publish", admin, json={"did": "5000"}))[0] == 200
        assert (await _call(s, "POST", f"{F}/closed/versions", admin, json={"document": closed}))[0] == 201
        # what DID 5000 would see change: main@1 -> closed@1
        status, diff = await _call(s, "GET", f"{F}/closed/diff?old_flow=main&old=1&new=1", sup)
        assert status == 200 and (diff["flow"], diff["old_flow"], diff["old"], diff["new"]) == ("closed", "main", 1, 1)
        changes = {c["path"]: c for c in diff["changes"]}
        assert changes["name"] == {"path": "name", "kind": "changed", "old": "main", "new": "closed"}
        assert changes["start"] == {"path": "start", "kind": "changed", "old": "greeting", "new": "bye"}
        assert changes["nodes.greeting"]["kind"] == "removed"
        assert changes["nodes.bye"] == {"path": "nodes.bye", "kind": "added", "old": None,
                                        "new": {"type": "hangup", "prompt": "goodbye"}}
        # the same flow unless another is named
        status, diff = await _call(s, "GET", f"{F}/closed/diff?old=1&new=1", sup)
        assert (status, diff["old_flow"], diff["changes"]) == (200, "closed", [])
        status, err = await _call(s, "GET", f"{F}/closed/diff?old_flow=nope&old=1&new=1", sup)
        assert status == 404 and err["error"] == "flow 'nope' has no version 1"


async def test_node_types_list_each_types_fields_for_the_editor(api_rig):  # noqa: F811
    sup, agent = await api_rig.token("sup_a"), await api_rig.token("agent1")
    async with api_rig.client() as s:
        status, types = await _call(s, "GET", "/api/v1/flow-node-types", sup)
        assert (await _call(s, "GET", "/api/v1/flow-node-types", agent))[0] == 403
    assert status == 200
    by_type = {t["type"]: t for t in types}
    assert sorted(by_type) == sorted(NODE_TYPES)
    fields = {t: {f["name"]: f for f in by_type[t]["fields"]} for t in by_type}
    menu = fields["menu"]
    assert menu["prompt"] == {"name": "prompt", "required": True, "kind": "any", "default": None, "choices": [],
                              "item_kind": None}
    assert menu["options"]["kind"] == "map" and menu["options"]["item_kind"] == "string"
    assert (menu["timeout"]["kind"], menu["timeout"]["default"]) == ("number", 5.0)
    assert all(not menu[n]["required"] for n in ("on_exhausted", "on_invalid", "on_timeout"))
    assert [f["name"] for f in by_type["menu"]["fields"]][-2:] == ["max_visits", "on_max_visits"]
    assert (fields["collect"]["max_digits"]["required"], fields["collect"]["terminator"]["choices"]) == (
        True, ["#", "*", ""])
    assert fields["set"]["skills"]["item_kind"] == "number"
    assert by_type["queue"]["description"] == "Hand the call to a ccserver queue; ends the IVR."


async def test_roles_supervisors_read_only_agents_nothing(api_rig):  # noqa: F811
    admin, sup, agent = [await api_rig.token(u) for u in ("admin", "sup_a", "agent1")]
    async with api_rig.client() as s:
        assert (await _call(s, "POST", f"{F}/main/versions", admin, json={"document": MAIN}))[0] == 201
        assert (await _call(s, "POST", f"{F}/main/versions/1/check", admin))[0] == 200
        for method, path, body in [
            ("POST", f"{F}/main/versions", {"document": MAIN}),
            ("PUT", f"{F}/main/versions/1", {"document": MAIN}),
            ("POST", f"{F}/main/versions/1/check", None),
            ("POST", f"{F}/main/versions/1/publish", {"did": "*"}),
            ("POST", "/api/v1/flow-publications/*/rollback", None),
            ("PUT", "/api/v1/flow-overrides/emergency", {"active": True}),
        ]:
            status, err = await _call(s, method, path, sup, json=body)
            assert status == 403 and "role 'supervisor'" in err["error"], (path, err)
        assert (await _call(s, "GET", f"{F}/main/versions/1", sup))[0] == 200
        assert (await _call(s, "GET", F, agent))[0] == 403
        assert (await _call(s, "POST", f"{F}/main/versions/1/simulate", agent, json={}))[0] == 403
    assert await api_rig.rows("SELECT 1 FROM ivr_publications") == []
    denied = await api_rig.rows("SELECT action FROM audit_log WHERE outcome = 'denied' AND username = 'sup_a'")
    assert "ivr.flow.publish" in [r["action"] for r in denied]


async def test_bad_bodies_get_field_errors_and_change_nothing(api_rig):  # noqa: F811
    admin = await api_rig.token("admin")
    main_json = json.dumps({"document": MAIN})
    duplicate = main_json.replace('"1": "to_support"', '"1": "to_support", "1": "priority_notice"')
    assert duplicate != main_json
    bomb = "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n"
    cases = [
        (duplicate, 422, "document.nodes.main_menu.options.1", "duplicate key"),
        (json.dumps({"yaml": bomb}), 422, "yaml.", "anchors"),
        (json.dumps({"yaml": "name: [unclosed"}), 422, "yaml.", "invalid YAML"),
        (json.dumps({"yaml": "- a list"}), 422, "yaml", "must be a mapping"),
        (json.dumps({"document": MAIN, "extra": 1}), 422, "extra", "unknown field"),
        (json.dumps({}), 422, "(body)", "exactly one of document"),
        (json.dumps({"document": MAIN, "yaml": "x: 1"}), 422, "(body)", "exactly one of document"),
        (json.dumps({"document": "text"}), 422, "document", "dictionary"),
    ]
    async with api_rig.client() as s:
        for body, status, field, reason in cases:
            async with s.post(f"{F}/main/versions", data=body, headers={**_bearer(admin),
                                                                        "Content-Type": "application/json"}) as r:
                out = await r.json()
            assert r.status == status, (body[:60], out)
            assert any(f["field"].startswith(field) and reason in f["reason"] for f in out["fields"]), out
        status, out = await _call(s, "POST", f"{F}/bad name/versions", admin, json={"document": MAIN})
        assert status == 422 and out["fields"][0]["field"] == "flow"
        assert (await _call(s, "POST", f"{F}/main/versions", admin, json={"document": MAIN}))[0] == 201
        status, out = await _call(s, "POST", f"{F}/main/versions/1/simulate", admin, json={"digits": "12x"})
        assert status == 422 and out["fields"][0]["field"] == "digits"
        status, out = await _call(s, "GET", f"{F}/main/diff?old=1", admin)
        assert status == 422 and out["fields"] == [{"field": "new", "reason": "required"}]
        assert (await _call(s, "GET", f"{F}/main/versions/7", admin))[0] == 404
        status, out = await _call(s, "POST", f"{F}/main/versions/1/publish", admin, json={"did": "bad did!"})
        assert status == 422 and out["fields"][0]["field"] == "did"
        status, out = await _call(s, "PUT", "/api/v1/flow-overrides/bad-name", admin, json={"active": True})
        assert status == 422 and out["fields"][0]["field"] == "name"
    assert len(await api_rig.rows("SELECT 1 FROM ivr_flow_versions")) == 1
    assert await api_rig.rows("SELECT 1 FROM ivr_publications") == []
