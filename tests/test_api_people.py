"""People, skills and pause reasons in the API agree with what routing uses: skills and pause
reasons come from the configuration, users link only to configured agents, tokens can be listed
(never their secret) and revoked, and an admin can reset a password."""

from __future__ import annotations

import json

from test_api_auth import audit, state
from test_api_rig import PASSWORD, api_rig  # noqa: F401  (fixture)

from ccserver.config import Config

NEW_PASSWORD = "a brand new passphrase"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def user_count(rig, username: str) -> int:
    return (await rig.rows("SELECT count(*) AS n FROM users WHERE username = $1", username))[0]["n"]


async def test_skills_are_the_configured_ones_with_the_queues_and_agents_using_them(api_rig):
    admin, sup_b = bearer(await api_rig.token("admin")), bearer(await api_rig.token("sup_b"))
    async with api_rig.client() as s:
        async with s.get("/api/v1/skills", headers=admin) as r:
            assert r.status == 200
            assert await r.json() == [{"name": "english", "queues": [], "agents": {"1001": 80}}]
        # creating a skill through the API cannot reach routing: there is no such route
        async with s.post("/api/v1/skills", headers=admin, json={"name": "french"}) as r:
            assert r.status == 405
        server = api_rig.server
        data = server.config.model_dump()
        data["acd"]["skills"] = ["english", "french"]
        data["queues"][0]["skills"] = {"english": 50}  # support
        data["queues"][1]["escalation"] = [{"after_seconds": 60, "skills": {"french": 0}}]  # sales
        server.config = Config.model_validate(data)
        async with s.get("/api/v1/skills", headers=admin) as r:
            assert await r.json() == [{"name": "english", "queues": ["support"], "agents": {"1001": 80}},
                                      {"name": "french", "queues": ["sales"], "agents": {}}]
        async with s.get("/api/v1/skills", headers=sup_b) as r:  # team B: sales, 1002, 1003
            assert await r.json() == [{"name": "english", "queues": [], "agents": {}},
                                      {"name": "french", "queues": ["sales"], "agents": {}}]
        async with s.get("/api/v1/skills", headers=bearer(await api_rig.token("agent1"))) as r:
            assert r.status == 403


async def test_a_user_links_to_one_configured_agent_only_when_its_role_is_agent(api_rig):
    admin = bearer(await api_rig.token("admin"))
    new = {"password": PASSWORD, "display_name": "New"}
    async with api_rig.client() as s:
        for body, reason in [
            ({"username": "u1", "role": "agent"}, "a user with role 'agent' must be linked to an agent"),
            ({"username": "u2", "role": "agent", "agent_id": "ghost"},
             "unknown agent 'ghost' (not in the configuration)"),
            ({"username": "u3", "role": "supervisor", "agent_id": "1003"},
             "only a user with role 'agent' is linked to an agent, not role 'supervisor'"),
            ({"username": "u4", "role": "admin", "agent_id": "1003"},
             "only a user with role 'agent' is linked to an agent, not role 'admin'"),
        ]:
            async with s.post("/api/v1/users", headers=admin, json={**new, **body}) as r:
                assert r.status == 422, body
                assert (await r.json())["fields"] == [{"field": "agent_id", "reason": reason}]
            assert await user_count(api_rig, body["username"]) == 0
        async with s.post("/api/v1/users", headers=admin, json={**new, "username": "agent3", "role": "agent",
                                                                "agent_id": "1003"}) as r:
            assert r.status == 201
            agent3 = (await r.json())["id"]

        async def patch(user_id: int, body: dict) -> tuple[int, dict]:
            async with s.patch(f"/api/v1/users/{user_id}", headers=admin, json=body) as r:
                return r.status, await r.json()

        ids = api_rig.user_ids
        status, got = await patch(agent3, {"role": "supervisor"})  # still linked to 1003
        assert status == 422 and got["fields"][0]["field"] == "agent_id"
        status, got = await patch(ids["sup_a"], {"role": "agent"})  # linked to no agent
        assert status == 422 and got["fields"][0]["field"] == "agent_id"
        status, got = await patch(ids["sup_a"], {"agent_id": "1003"})
        assert status == 422 and got["fields"][0]["field"] == "agent_id"
        status, got = await patch(ids["agent2"], {"agent_id": "ghost"})
        assert status == 422 and got["fields"][0]["reason"] == "unknown agent 'ghost' (not in the configuration)"
        status, got = await patch(ids["agent2"], {"agent_id": "1001"})  # agent1's
        assert status == 409
        status, got = await patch(ids["agent2"], {})
        assert status == 422 and got["fields"] == [{"field": "(body)", "reason": "name at least one field to change"}]
        status, got = await patch(ids["agent2"], {"disabled": None})
        assert status == 422 and got["fields"] == [{"field": "disabled", "reason": "may not be null"}]
        status, got = await patch(ids["admin"], {"role": "supervisor"})
        assert status == 409
        rows = await api_rig.rows("SELECT username, role, agent_id FROM users ORDER BY id")
        assert [tuple(r) for r in rows] == [
            ("admin", "admin", None), ("sup_a", "supervisor", None), ("sup_b", "supervisor", None),
            ("agent1", "agent", "1001"), ("agent2", "agent", "1002"), ("agent3", "agent", "1003")]

        status, got = await patch(agent3, {"role": "supervisor", "agent_id": None, "display_name": "Carol S"})
        assert status == 200
        assert (got["role"], got["agent_id"], got["display_name"]) == ("supervisor", None, "Carol S")
    outcomes = [r["outcome"] for r in await audit(api_rig, "user.create")]
    assert outcomes == ["failed"] * 4 + ["ok"]
    (last,) = [r for r in await audit(api_rig, "user.update") if r["outcome"] == "ok"]
    assert json.loads(last["detail"]) == {"role": "supervisor", "agent_id": None, "display_name": "Carol S"}


async def test_a_user_lists_their_tokens_without_secrets_and_revokes_one_by_its_id(api_rig):
    s, csrf = await api_rig.login("agent1")
    admin = bearer(await api_rig.token("admin"))
    async with s:
        secrets = []
        for label in ("script a", "script b"):
            async with s.post("/api/v1/tokens", json={"label": label}, headers={"X-CSRF-Token": csrf}) as r:
                secrets.append((await r.json())["token"])
        async with s.get("/api/v1/tokens") as r:
            text = await r.text()
            listed = json.loads(text)
        assert r.status == 200 and [t["label"] for t in listed] == ["script a", "script b"]
        assert set(listed[0]) == {"id", "label", "created_at", "expires_at"}
        assert not any(secret in text for secret in secrets)
        # another user can neither list nor revoke them
        other = bearer(await api_rig.token("agent2"))
        async with s.get(f"/api/v1/tokens?user_id={api_rig.user_ids['agent1']}", headers=other) as r:
            assert r.status == 403
        async with s.delete(f"/api/v1/tokens/{listed[0]['id']}", headers=other) as r:
            assert r.status == 404
        async with s.get("/api/v1/me", headers=bearer(secrets[0])) as r:
            assert r.status == 200

        async with s.delete(f"/api/v1/tokens/{listed[0]['id']}", headers={"X-CSRF-Token": csrf}) as r:
            assert r.status == 200
        async with s.get("/api/v1/me", headers=bearer(secrets[0])) as r:
            assert r.status == 401
        async with s.get("/api/v1/me", headers=bearer(secrets[1])) as r:
            assert r.status == 200
        async with s.get("/api/v1/tokens") as r:
            assert [t["label"] for t in await r.json()] == ["script b"]
        # an admin sees a user's tokens
        async with s.get(f"/api/v1/tokens?user_id={api_rig.user_ids['agent1']}", headers=admin) as r:
            assert [t["id"] for t in await r.json()] == [listed[1]["id"]]
        async with s.get("/api/v1/tokens?user_id=999999", headers=admin) as r:
            assert r.status == 404
        async with s.get("/api/v1/tokens?user_id=me", headers=admin) as r:
            assert r.status == 422 and (await r.json())["fields"][0]["field"] == "user_id"
    rows = await audit(api_rig, "token.revoke")
    assert [(r["username"], r["target"], r["outcome"]) for r in rows] == [
        ("agent2", str(listed[0]["id"]), "failed"), ("agent1", str(listed[0]["id"]), "ok")]


async def test_an_admin_resets_a_password_and_the_users_sessions_and_tokens_end(api_rig):
    admin = bearer(await api_rig.token("admin"))
    victim_token = await api_rig.token("sup_b")  # its log-in session stays live too
    session, _ = await api_rig.login("sup_b")
    sup_b = api_rig.user_ids["sup_b"]
    async with session, api_rig.client() as s:
        async with s.put(f"/api/v1/users/{sup_b}/password", headers=bearer(await api_rig.token("sup_a")),
                         json={"password": NEW_PASSWORD}) as r:
            assert r.status == 403
        async with s.put(f"/api/v1/users/{sup_b}/password", headers=admin, json={"password": "short"}) as r:
            assert r.status == 422 and (await r.json())["fields"][0]["field"] == "password"
        async with s.put("/api/v1/users/999999/password", headers=admin, json={"password": NEW_PASSWORD}) as r:
            assert r.status == 404
        async with session.get("/api/v1/me") as r:
            assert r.status == 200  # nothing changed yet

        async with s.put(f"/api/v1/users/{sup_b}/password", headers=admin, json={"password": NEW_PASSWORD}) as r:
            assert r.status == 200
        async with s.get("/api/v1/me", headers=bearer(victim_token)) as r:
            assert r.status == 401
        async with session.get("/api/v1/me") as r:
            assert r.status == 401
        async with s.post("/api/v1/login", json={"username": "sup_b", "password": PASSWORD}) as r:
            assert r.status == 401
        async with s.post("/api/v1/login", json={"username": "sup_b", "password": NEW_PASSWORD}) as r:
            assert r.status == 200
    rows = await audit(api_rig, "user.password_reset")
    assert [(r["username"], r["target"], r["outcome"]) for r in rows] == [
        ("sup_a", str(sup_b), "denied"), ("admin", str(sup_b), "failed"), ("admin", "999999", "failed"),
        ("admin", str(sup_b), "ok")]
    # the two log-in sessions of api_rig.token / login and the bearer token
    assert json.loads(rows[-1]["detail"]) == {"revoked_sessions_and_tokens": 3}
    details = await api_rig.rows("SELECT detail::text AS d FROM audit_log")
    assert not any(NEW_PASSWORD in r["d"] for r in details)


async def test_only_configured_pause_reasons_are_accepted(api_rig):
    agent = bearer(await api_rig.token("agent1"))
    async with api_rig.client() as s:
        async with s.get("/api/v1/pause-reasons", headers=agent) as r:
            assert await r.json() == {"reasons": ["break", "lunch", "meeting", "training", "coaching"]}
        # free text, and the reasons ccserver sets itself (ring-no-answer, failed leg, shutdown)
        for reason in ("nap", "no answer", "unavailable", "shutdown"):
            async with s.post("/api/v1/agents/1001/pause", headers=agent, json={"reason": reason}) as r:
                assert r.status == 422, reason
                (field,) = (await r.json())["fields"]
                assert field["field"] == "reason" and "acd.pause_reasons" in field["reason"]
            assert state(api_rig, "1001") == "ready"
        async with s.post("/api/v1/agents/1001/logout", headers=agent) as r:
            assert r.status == 200
        async with s.post("/api/v1/agents/1001/login", headers=agent, json={"paused_reason": "nap"}) as r:
            assert r.status == 422 and (await r.json())["fields"][0]["field"] == "paused_reason"
        assert state(api_rig, "1001") == "logged_out"
        async with s.post("/api/v1/agents/1001/login", headers=agent, json={"paused_reason": "coaching"}) as r:
            assert r.status == 200
        assert (state(api_rig, "1001"), api_rig.server.center.agents["1001"].reason) == ("paused", "coaching")
    assert [r["outcome"] for r in await audit(api_rig, "agent.pause")] == ["failed"] * 4
