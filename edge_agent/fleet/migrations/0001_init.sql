-- fleet store, schema 1. Portable SQL (SQLite now, PostgreSQL later): TEXT, BIGINT,
-- DOUBLE PRECISION; JSON kept as TEXT; every statement ends with ";" on its own line end.
CREATE TABLE devices (
    device TEXT PRIMARY KEY,
    online INTEGER,
    model TEXT,
    version TEXT,
    active TEXT,
    agent_version TEXT,
    groups_json TEXT NOT NULL DEFAULT '[]',
    summary_json TEXT NOT NULL DEFAULT '{}',
    first_seen DOUBLE PRECISION,
    last_seen DOUBLE PRECISION,
    missing BIGINT NOT NULL DEFAULT 0,
    reported_lost BIGINT NOT NULL DEFAULT 0,
    duplicates BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE streams (
    device TEXT NOT NULL,
    stream TEXT NOT NULL,
    state_json TEXT NOT NULL,
    received BIGINT NOT NULL DEFAULT 0,
    missing BIGINT NOT NULL DEFAULT 0,
    reported_lost BIGINT NOT NULL DEFAULT 0,
    duplicates BIGINT NOT NULL DEFAULT 0,
    last_seq BIGINT,
    PRIMARY KEY (device, stream)
);
CREATE TABLE update_records (
    device TEXT NOT NULL,
    seq BIGINT NOT NULL,
    ts DOUBLE PRECISION,
    deployment TEXT,
    model TEXT,
    version TEXT,
    state TEXT,
    final INTEGER NOT NULL DEFAULT 0,
    reason TEXT,
    detail TEXT,
    received_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (device, seq)
);
CREATE INDEX update_records_deployment ON update_records (deployment, device);
CREATE TABLE rollouts (
    id TEXT PRIMARY KEY,
    created_at DOUBLE PRECISION NOT NULL,
    state TEXT NOT NULL,
    doc_json TEXT NOT NULL
);
CREATE TABLE commands (
    device TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    rollout TEXT,
    body_json TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    sent_at DOUBLE PRECISION,
    reply_json TEXT,
    replied_at DOUBLE PRECISION,
    PRIMARY KEY (device, id)
);
CREATE INDEX commands_unsent ON commands (sent_at);
