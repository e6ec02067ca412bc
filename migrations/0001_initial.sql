-- 0001_initial: call records, agent state history, and the ACD's configuration tables.
--
-- Applied by ccserver.db.migrate inside one transaction, so no CREATE INDEX CONCURRENTLY here.
--
-- Why `calls` is NOT partitioned by month (yet):
--   The CDR writer makes replays idempotent with INSERT ... ON CONFLICT (call_id) DO NOTHING.
--   That needs a unique index on call_id alone. On a partitioned table every unique index must
--   include the partition key, so the key would become (call_id, ended_at): a call id would only
--   be unique per ended_at, and a second record for the same call (e.g. a "lost" record written
--   at resync and the real one later) would be stored twice instead of being refused. Partitioning
--   also needs partitions created ahead of time (or a DEFAULT partition, which then blocks
--   creating the month it overlaps). A contact center with 1M calls a month holds ~12M rows a
--   year: plain b-tree indexes on one table serve the reports below well at that size, and
--   retention is a batched DELETE by ended_at. If a site outgrows this, a later migration can
--   switch to monthly partitions keyed (call_id, ended_at); a record's ended_at never changes, so
--   the writer's replays stay idempotent with ON CONFLICT (call_id, ended_at).
--
-- Why the CDR tables have no foreign keys to queues/agents:
--   queues and agents come from the configuration file and may be renamed or removed; a call's
--   history must still be writable (and kept) regardless, and a replay from the spool must never
--   fail on a reference that no longer exists.

CREATE TABLE calls (
    call_id         text PRIMARY KEY,                 -- "<node>:<Linkedid>"
    node            text NOT NULL,
    channel         text NOT NULL,
    did             text NOT NULL,
    caller          text NOT NULL,
    arrived_at      timestamptz NOT NULL,
    ivr_ended_at    timestamptz,
    enqueued_at     timestamptz,
    offered_at      timestamptz,
    answered_at     timestamptz,
    ended_at        timestamptz NOT NULL,
    queue           text,
    agent_id        text,
    talk_seconds    numeric(12, 3) NOT NULL DEFAULT 0 CHECK (talk_seconds >= 0),
    hold_seconds    numeric(12, 3) NOT NULL DEFAULT 0 CHECK (hold_seconds >= 0),
    wrapup_seconds  numeric(12, 3) NOT NULL DEFAULT 0 CHECK (wrapup_seconds >= 0),
    ring_no_answer  integer NOT NULL DEFAULT 0 CHECK (ring_no_answer >= 0),
    -- the values of ccserver.cdr.record.Disposition
    disposition     text NOT NULL CHECK (disposition IN
                        ('answered', 'abandoned', 'ivr_hangup', 'ivr_completed', 'lost')),
    hangup_cause    text NOT NULL,
    hangup_by       text NOT NULL,
    ivr_path        text[] NOT NULL DEFAULT '{}',
    recording       text,
    variables       jsonb NOT NULL DEFAULT '{}',
    -- when the row reached Postgres (spool replays arrive late): what `ccserver cdr tail` follows
    inserted_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Reports filter by a time range, usually per queue or per agent; look-ups by number.
CREATE INDEX calls_ended_at ON calls (ended_at);
CREATE INDEX calls_queue_ended_at ON calls (queue, ended_at);
CREATE INDEX calls_agent_ended_at ON calls (agent_id, ended_at);
CREATE INDEX calls_caller ON calls (caller);
CREATE INDEX calls_did ON calls (did);

CREATE INDEX calls_inserted_at ON calls (inserted_at);

CREATE TABLE agent_state_changes (
    change_id   text PRIMARY KEY,                     -- makes replays idempotent
    agent_id    text NOT NULL,
    -- the values of ccserver.cdr.record.AgentState
    state       text NOT NULL CHECK (state IN
                    ('logged_out', 'ready', 'offered', 'on_call', 'wrap_up', 'paused')),
    previous    text NOT NULL CHECK (previous IN
                    ('logged_out', 'ready', 'offered', 'on_call', 'wrap_up', 'paused')),
    reason      text,
    call_id     text,
    at          timestamptz NOT NULL
);

CREATE INDEX agent_state_changes_agent_at ON agent_state_changes (agent_id, at);
CREATE INDEX agent_state_changes_at ON agent_state_changes (at);

CREATE TABLE queues (
    name                    text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_-]{1,64}$'),
    service_level_seconds   integer NOT NULL DEFAULT 20 CHECK (service_level_seconds >= 1),
    wrapup_seconds          numeric(8, 3) NOT NULL DEFAULT 5 CHECK (wrapup_seconds BETWEEN 0 AND 3600),
    record                  boolean NOT NULL DEFAULT false,
    created_at              timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE agents (
    id      text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_.-]{1,64}$'),
    name    text NOT NULL,
    node    text NOT NULL,
    device  text NOT NULL                             -- dial string on that node, e.g. PJSIP/1001
);

CREATE TABLE skills (
    id      integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name    text NOT NULL UNIQUE
);

CREATE TABLE agent_skills (
    agent_id    text NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    skill_id    integer NOT NULL REFERENCES skills (id) ON DELETE CASCADE,
    level       smallint NOT NULL CHECK (level BETWEEN 0 AND 100),
    PRIMARY KEY (agent_id, skill_id)
);

CREATE INDEX agent_skills_skill ON agent_skills (skill_id);

CREATE TABLE queue_agents (
    queue       text NOT NULL REFERENCES queues (name) ON DELETE CASCADE ON UPDATE CASCADE,
    agent       text NOT NULL REFERENCES agents (id) ON DELETE CASCADE ON UPDATE CASCADE,
    priority    integer NOT NULL DEFAULT 0,
    PRIMARY KEY (queue, agent)
);

CREATE INDEX queue_agents_agent ON queue_agents (agent);
