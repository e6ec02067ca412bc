-- 0002_people_and_audit: users, teams, log-in sessions / API tokens, and the audit log.
--
-- Passwords are stored as scrypt hashes in the self-describing form
-- "scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>" so the cost can be raised later without a migration.
-- Sessions and bearer tokens are stored only as the sha256 of the secret: a database dump does
-- not let anyone log in.
--
-- users.agent_id names an agent of the configuration (file or the `agents` table); no foreign
-- key, for the same reason the CDR tables have none: agents come from the configuration and may
-- be renamed, and a user must stay editable regardless.

CREATE TABLE users (
    id              integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username        text NOT NULL UNIQUE CHECK (username ~ '^[A-Za-z0-9_.@-]{1,64}$'),
    display_name    text NOT NULL DEFAULT '',
    role            text NOT NULL CHECK (role IN ('admin', 'supervisor', 'agent')),
    password_hash   text NOT NULL,
    agent_id        text UNIQUE,
    disabled        boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE teams (
    id      integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name    text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9_ .-]{1,64}$')
);

-- Agents (by configuration id) that belong to a team: what a supervisor of that team may see and act on.
CREATE TABLE team_agents (
    team_id     integer NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    agent_id    text NOT NULL,
    PRIMARY KEY (team_id, agent_id)
);

CREATE INDEX team_agents_agent ON team_agents (agent_id);

-- Queues a team works: a supervisor sees the live state and KPIs of these queues.
CREATE TABLE team_queues (
    team_id     integer NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    queue       text NOT NULL,
    PRIMARY KEY (team_id, queue)
);

CREATE TABLE team_supervisors (
    team_id     integer NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    user_id     integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (team_id, user_id)
);

CREATE INDEX team_supervisors_user ON team_supervisors (user_id);

-- Both browser sessions (kind 'session') and API bearer tokens (kind 'token'). A session's CSRF
-- token is derived from its secret (HMAC), so it needs no column.
CREATE TABLE auth_tokens (
    id              integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_sha256    bytea NOT NULL UNIQUE,
    kind            text NOT NULL CHECK (kind IN ('session', 'token')),
    user_id         integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    label           text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz
);

CREATE INDEX auth_tokens_user ON auth_tokens (user_id);

CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    user_id     integer REFERENCES users (id) ON DELETE SET NULL,
    username    text NOT NULL,                    -- kept when the user is deleted
    action      text NOT NULL,                    -- e.g. "agent.pause", "user.create"
    target      text NOT NULL DEFAULT '',
    detail      jsonb NOT NULL DEFAULT '{}',
    remote      text NOT NULL DEFAULT '',         -- client address the request came from
    outcome     text NOT NULL CHECK (outcome IN ('ok', 'denied', 'failed'))
);

CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_user_at ON audit_log (user_id, at);
CREATE INDEX audit_log_action_at ON audit_log (action, at);
