-- 0003_ivr_flows: IVR flow versions, which version answers which DID, and schedule overrides.
--
-- A version's document is the flow as the admin wrote it (the YAML / editor form as JSON), kept
-- even when it fails the static checks (a draft may be broken; it can never be published).
-- Published and rolled-back versions are never edited: a change is a new version.
-- Who changed what, when, and the diff, go to audit_log (0002) with actions "ivr.*".

CREATE TABLE ivr_flow_versions (
    flow        text NOT NULL CHECK (flow ~ '^[A-Za-z][A-Za-z0-9_-]{0,63}$'),
    version     integer NOT NULL CHECK (version >= 1),
    status      text NOT NULL CHECK (status IN ('draft', 'checked', 'published', 'rolled_back')),
    document    jsonb NOT NULL,
    problems    jsonb NOT NULL DEFAULT '[]',
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_by  text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (flow, version)
);

-- The version new calls to a DID get ('*' = any DID without its own row). One row per DID, so
-- a publish is a single-row switch inside one transaction.
CREATE TABLE ivr_publications (
    did             text PRIMARY KEY CHECK (did ~ '^([A-Za-z0-9_+#-]{1,64}|\*)$'),
    flow            text NOT NULL,
    version         integer NOT NULL,
    published_by    text NOT NULL,
    published_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    FOREIGN KEY (flow, version) REFERENCES ivr_flow_versions (flow, version)
);

-- Every switch of a DID, in order: what a rollback returns to.
CREATE TABLE ivr_publication_history (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    did         text NOT NULL,
    flow        text NOT NULL,
    version     integer NOT NULL,
    action      text NOT NULL CHECK (action IN ('publish', 'rollback')),
    by_user     text NOT NULL,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    FOREIGN KEY (flow, version) REFERENCES ivr_flow_versions (flow, version)
);

CREATE INDEX ivr_publication_history_did ON ivr_publication_history (did, id);

-- Schedule overrides ("emergency") an admin switches on and off while calls run.
CREATE TABLE ivr_overrides (
    name        text PRIMARY KEY CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_]{0,63}$'),
    active      boolean NOT NULL,
    set_by      text NOT NULL,
    set_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);
