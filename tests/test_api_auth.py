"""Authentication, CSRF, authorization and bad input: the right status, and nothing changed."""

from __future__ import annotations

import asyncio
import json
import threading

from test_api_rig import PASSWORD, api_rig  # noqa: F401  (fixture)

from ccserver.api import passwords, routes
from ccserver.core.call import CallState
from ccserver.core.events import IvrFinished


async def audit(rig, action: str):
    return await rig.rows("SELECT username, target, outcome, detail, remote FROM audit_log WHERE action = $1 "
                          "ORDER BY id", action)


def state(rig, agent_id: str) -> str:
    return rig.server.center.agents[agent_id].state


async def test_login_sets_an_httponly_strict_cookie_and_me_works(api_rig):
    s = api_rig.client()
    async with s:
        async with s.post("/api/v1/login", json={"username": "sup_a", "password": PASSWORD}) as r:
            assert r.status == 200
            cookie = r.headers["Set-Cookie"]
            body = await r.json()
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert body["user"]["role"] == "supervisor" and len(body["csrf_token"]) == 64
        async with s.get("/api/v1/me") as r:
            assert (await r.json())["csrf_token"] == body["csrf_token"]
    (row,) = await audit(api_rig, "login")
    assert row["username"] == "sup_a" and row["outcome"] == "ok" and row["remote"] == "127.0.0.1"
    # only a hash of the session secret is stored
    secret = cookie.split("ccs_session=")[1].split(";")[0]
    stored = await api_rig.rows("SELECT token_sha256 FROM auth_tokens")
    assert all(secret.encode() not in bytes(r["token_sha256"]) for r in stored)


async def test_failed_logins_are_rate_limited_even_with_the_right_password_after(api_rig):
    async with api_rig.client() as s:
        for _ in range(3):
            async with s.post("/api/v1/login", json={"username": "admin", "password": "wrong-wrong-wrong"}) as r:
                assert r.status == 401
        async with s.post("/api/v1/login", json={"username": "admin", "password": PASSWORD}) as r:
            assert r.status == 429 and int(r.headers["Retry-After"]) > 0
            assert "ccs_session" not in r.cookies
        async with s.post("/api/v1/login", json={"username": "nobody", "password": "x"}) as r:
            assert r.status == 429  # the same client address is limited too
    rows = await audit(api_rig, "login")
    assert [r["outcome"] for r in rows] == ["denied"] * 5
    assert (await api_rig.rows("SELECT count(*) AS n FROM auth_tokens"))[0]["n"] == 0


async def test_missing_forged_expired_and_revoked_credentials_get_401(api_rig):
    token = await api_rig.token("admin")
    async with api_rig.client() as s:
        async with s.get("/api/v1/users") as r:
            assert r.status == 401 and r.headers["WWW-Authenticate"] == "Bearer"
        for bad in ("Bearer forged-token", "Basic YWRtaW46eA==", "Bearer ", token):
            async with s.get("/api/v1/users", headers={"Authorization": bad}) as r:
                assert r.status == 401, bad
        s.cookie_jar.update_cookies({"ccs_session": "forged"})
        async with s.get("/api/v1/me") as r:
            assert r.status == 401
        async with s.get("/api/v1/users", headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 200
        await api_rig.rows("UPDATE auth_tokens SET expires_at = now() - interval '1 second' WHERE kind = 'token'")
        async with s.get("/api/v1/users", headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 401
    s, csrf = await api_rig.login("sup_a")
    async with s:
        async with s.post("/api/v1/logout", headers={"X-CSRF-Token": csrf}) as r:
            assert r.status == 200
        old = api_rig.client()
        async with old:
            async with old.get("/api/v1/me") as r:
                assert r.status == 401


async def test_csrf_is_required_for_state_changes_with_the_cookie(api_rig):
    s, csrf = await api_rig.login("agent1")
    async with s:
        for headers in ({}, {"X-CSRF-Token": "0" * 64}):
            async with s.post("/api/v1/agents/1001/pause", json={"reason": "break"}, headers=headers) as r:
                assert r.status == 403 and "X-CSRF-Token" in (await r.json())["error"]
        assert state(api_rig, "1001") == "ready"
        async with s.post("/api/v1/agents/1001/pause", json={"reason": "break"}, headers={"X-CSRF-Token": csrf}) as r:
            assert r.status == 200 and (await r.json())["state"] == "paused"
    rows = await audit(api_rig, "agent.pause")
    assert [r["outcome"] for r in rows] == ["denied", "denied", "ok"]
    assert json.loads(rows[-1]["detail"]) == {"from": "ready", "to": "paused"}


async def test_role_escalation_and_other_teams_are_refused(api_rig):
    agent = await api_rig.token("agent1")
    sup_a = await api_rig.token("sup_a")
    sup_b = await api_rig.token("sup_b")
    async with api_rig.client() as s:
        def h(t):
            return {"Authorization": f"Bearer {t}"}
        async with s.get("/api/v1/users", headers=h(agent)) as r:
            assert r.status == 403
        async with s.post("/api/v1/users", headers=h(agent), json={
                "username": "evil", "password": "x" * 16, "role": "admin"}) as r:
            assert r.status == 403
        async with s.post("/api/v1/users", headers=h(sup_a), json={
                "username": "evil", "password": "x" * 16, "role": "admin"}) as r:
            assert r.status == 403
        async with s.post("/api/v1/agents/1002/pause", headers=h(agent), json={"reason": "x"}) as r:
            assert r.status == 403  # another agent
        async with s.post("/api/v1/agents/1002/pause", headers=h(sup_a), json={"reason": "x"}) as r:
            assert r.status == 403  # supervisor of another team
        async with s.get("/api/v1/queues/sales", headers=h(sup_a)) as r:
            assert r.status == 403
        assert state(api_rig, "1002") == "ready"
        async with s.post("/api/v1/agents/1002/pause", headers=h(sup_b), json={"reason": "coaching"}) as r:
            assert r.status == 200
        assert (state(api_rig, "1002"), api_rig.server.center.agents["1002"].reason) == ("paused", "coaching")
        async with s.get("/api/v1/agents", headers=h(sup_a)) as r:
            assert [a["id"] for a in await r.json()] == ["1001"]
        async with s.get("/api/v1/queues", headers=h(sup_b)) as r:
            assert [q["name"] for q in await r.json()] == ["sales"]
        async with s.get("/api/v1/agents", headers=h(agent)) as r:
            (me,) = await r.json()
            assert (me["id"], me["device"], me["skills"]) == ("1001", "PJSIP/1001", {"english": 80})
    assert (await api_rig.rows("SELECT count(*) AS n FROM users WHERE username = 'evil'"))[0]["n"] == 0
    outcomes = [r["outcome"] for r in await audit(api_rig, "agent.pause")]
    assert outcomes == ["denied", "denied", "ok"]


async def test_bad_bodies_are_refused_with_field_errors(api_rig):
    token = await api_rig.token("admin")
    hdr = {"Authorization": f"Bearer {token}"}
    async with api_rig.client() as s:
        async with s.post("/api/v1/agents/1001/pause", headers={**hdr, "Content-Type": "application/json"},
                          data=b'{"reason": ') as r:
            assert r.status == 400 and "not valid JSON" in (await r.json())["error"]
        async with s.post("/api/v1/agents/1001/pause", headers=hdr, json={"reason": "x", "force": True}) as r:
            body = await r.json()
            assert r.status == 422 and body["fields"] == [{"field": "force", "reason": "unknown field"}]
        async with s.post("/api/v1/agents/1001/pause", headers=hdr, json={"reason": ""}) as r:
            assert r.status == 422 and (await r.json())["fields"][0]["field"] == "reason"
        async with s.post("/api/v1/agents/1001/pause", headers=hdr, data="reason=x") as r:
            assert r.status == 415
        async with s.post("/api/v1/agents/1001/pause", headers=hdr,
                          json={"reason": "x" * 10_000}) as r:
            assert r.status == 413
        async with s.post("/api/v1/users", headers=hdr, json={"username": "bad name", "password": "short",
                                                              "role": "root"}) as r:
            fields = {f["field"] for f in (await r.json())["fields"]}
            assert r.status == 422 and fields == {"username", "password", "role"}
        async with s.post("/api/v1/teams", headers=hdr, json={"name": "C"}) as r:
            team = await r.json()
        async with s.put(f"/api/v1/teams/{team['id']}/members", headers=hdr,
                         json={"agents": ["1001", "ghost"], "queues": ["nope"], "supervisors": [1]}) as r:
            fields = [f["field"] for f in (await r.json())["fields"]]
            assert r.status == 422 and fields == ["agents.1", "queues.0", "supervisors.0"]
        async with s.get("/api/v1/teams", headers=hdr) as r:
            assert next(t for t in await r.json() if t["name"] == "C")["agents"] == []
    assert state(api_rig, "1001") == "ready"


async def test_agent_actions_follow_the_state_machine(api_rig):
    token = await api_rig.token("agent1")
    hdr = {"Authorization": f"Bearer {token}"}
    async with api_rig.client() as s:
        async with s.post("/api/v1/agents/1001/wrapup-done", headers=hdr) as r:
            assert r.status == 409
        async with s.post("/api/v1/agents/1001/logout", headers=hdr) as r:
            assert r.status == 200 and (await r.json())["state"] == "logged_out"
        async with s.post("/api/v1/agents/1001/ready", headers=hdr) as r:
            assert r.status == 409
        async with s.post("/api/v1/agents/1001/login", headers=hdr, json={"paused_reason": "training"}) as r:
            assert (await r.json())["state"] == "paused"
        async with s.post("/api/v1/agents/1001/ready", headers=hdr) as r:
            got = await r.json()
            assert got["state"] == "ready" and got["since"] is not None
    outcomes = {(r["outcome"]) for r in await audit(api_rig, "agent.ready")}
    assert outcomes == {"failed", "ok"}


async def test_disabling_a_user_revokes_their_tokens_and_audit_is_filterable(api_rig):
    admin = {"Authorization": f"Bearer {await api_rig.token('admin')}"}
    victim = {"Authorization": f"Bearer {await api_rig.token('sup_b')}"}
    async with api_rig.client() as s:
        async with s.patch(f"/api/v1/users/{api_rig.user_ids['sup_b']}", headers=admin, json={"disabled": True}) as r:
            assert r.status == 200
        async with s.get("/api/v1/me", headers=victim) as r:
            assert r.status == 401
        async with s.get("/api/v1/audit?action=user.update", headers=admin) as r:
            rows = await r.json()
            assert [(x["username"], x["target"], x["outcome"]) for x in rows] == [
                ("admin", str(api_rig.user_ids["sup_b"]), "ok")]
        async with s.get("/api/v1/audit?since=yesterday", headers=admin) as r:
            assert r.status == 422 and (await r.json())["fields"][0]["field"] == "since"
        async with s.get("/api/v1/audit?user=sup_b&limit=5", headers=admin) as r:
            assert {x["action"] for x in await r.json()} == {"login", "token.create"}


async def test_an_unexpected_failure_is_a_500_that_names_nothing_and_is_still_audited(api_rig, caplog):
    admin = {"Authorization": f"Bearer {await api_rig.token('admin')}"}
    await api_rig.rows("ALTER TABLE teams RENAME TO teams_gone")  # the store's query now fails
    async with api_rig.client() as s:
        async with s.post("/api/v1/teams", headers=admin, json={"name": "night shift"}) as r:
            assert r.status == 500
            assert await r.json() == {"error": "internal error", "fields": []}
    (row,) = await audit(api_rig, "team.create")
    assert (row["username"], row["outcome"]) == ("admin", "failed")
    assert json.loads(row["detail"])["status"] == 500
    assert "teams" in caplog.text  # the cause is in the server log, not in the response


async def test_a_supervisor_sees_no_other_teams_waiting_callers_through_a_shared_agent(api_rig):
    server = api_rig.server
    store = server.api.api.store
    # team A also holds agent 1003, who serves team B's queue "sales"
    (team_a,) = [t for t in await store.teams() if t.name == "A"]
    await store.set_team_members(team_a.id, ["1001", "1003"], ["support"], [api_rig.user_ids["sup_a"]])
    now = server.clock()
    server._dispatch(server.center.pause("1002", "lunch", now))  # 1003 is logged out: it waits
    server.on_event(IvrFinished("pbx1:88.1", "pbx1", "PJSIP/carrier-88", "+15550008888", "5000", "sales",
                                ("greeting",), at=now))
    assert server.center.calls["pbx1:88.1"].state is CallState.QUEUED
    sup_a = {"Authorization": f"Bearer {await api_rig.token('sup_a')}"}
    sup_b = {"Authorization": f"Bearer {await api_rig.token('sup_b')}"}
    async with api_rig.client() as s:
        async with s.get("/api/v1/calls", headers=sup_a) as r:
            assert r.status == 200 and await r.json() == []
        async with s.get("/api/v1/queues", headers=sup_a) as r:
            assert [q["name"] for q in await r.json()] == ["support"]
        async with s.get("/api/v1/calls/pbx1:88.1", headers=sup_a) as r:
            assert r.status == 404  # out of scope looks like unknown
        async with s.post("/api/v1/calls/pbx1:88.1/transfer", headers=sup_a,
                          json={"destination": "+15559990000"}) as r:
            assert r.status == 404
        ws = await s.ws_connect("/api/v1/live", headers=sup_a)
        snap = await ws.receive_json(timeout=5)
        await ws.close()
        assert snap["calls"] == [] and [q["name"] for q in snap["queues"]] == ["support"]
        assert sorted(a["id"] for a in snap["agents"]) == ["1001", "1003"]
        async with s.get("/api/v1/calls", headers=sup_b) as r:  # its own team's supervisor does
            assert [c["call_id"] for c in await r.json()] == ["pbx1:88.1"]
    call = server.center.calls["pbx1:88.1"]
    assert (call.state, call.queue, call.transferred_to) == (CallState.QUEUED, "sales", None)
    assert [r["outcome"] for r in await audit(api_rig, "call.transfer")] == ["failed"]


async def test_concurrent_wrong_passwords_cannot_pass_the_limit_and_scrypt_runs_off_the_loop(api_rig,
                                                                                            monkeypatch):
    threads = []

    def verify(password, stored):
        threads.append(threading.get_ident())
        return passwords.verify_password(password, stored)

    monkeypatch.setattr(routes, "verify_password", verify)

    async def attempt(s):
        async with s.post("/api/v1/login", json={"username": "admin", "password": "wrong-wrong-wrong"}) as r:
            return r.status

    async with api_rig.client() as s:
        statuses = await asyncio.gather(*(attempt(s) for _ in range(30)))
    assert sorted(statuses) == [401] * 3 + [429] * 27  # the limit is 3
    assert len(threads) == 3 and threading.get_ident() not in threads
    reasons = [json.loads(r["detail"])["reason"] for r in await audit(api_rig, "login")]
    assert sorted(reasons) == ["bad credentials"] * 3 + ["rate limited"] * 27
