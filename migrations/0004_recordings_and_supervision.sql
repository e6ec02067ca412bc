-- 0004_recordings_and_supervision: call recordings (files on the nodes' recording roots) and the
-- supervisors' phones used to listen / whisper / barge.

-- One row per recording. `file` is the name under the node's recording root, built only from
-- ids ccserver generated. Size and checksum are filled once the file is closed.
CREATE TABLE recordings (
    id                bigserial PRIMARY KEY,
    call_id           text NOT NULL,
    node              text NOT NULL,
    file              text NOT NULL,
    agent_id          text,
    queue             text,
    started_at        timestamptz NOT NULL,
    ended_at          timestamptz,
    duration_seconds  numeric(12, 3) CHECK (duration_seconds >= 0),
    size_bytes        bigint CHECK (size_bytes >= 0),
    sha256            text CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    -- seconds from the start of the file: [[from, to], ...]; the open one while paused
    paused_spans      jsonb NOT NULL DEFAULT '[]',
    paused_since      timestamptz,
    UNIQUE (node, file)
);
CREATE INDEX recordings_call_id ON recordings (call_id);
CREATE INDEX recordings_started_at ON recordings (started_at);

-- A user's phone on a node (dial string as that node's dialplan takes it).
CREATE TABLE user_devices (
    user_id  integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    node     text NOT NULL,
    device   text NOT NULL CHECK (device ~ '^[A-Za-z0-9/@._:+-]{1,80}$'),
    PRIMARY KEY (user_id, node)
);
