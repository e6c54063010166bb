-- fleet store, schema 2: what the rollout leader reads from the other replicas' ingest
-- (update records and command replies by time, per deployment / rollout).
CREATE INDEX update_records_received ON update_records (deployment, received_at);
CREATE INDEX commands_replied ON commands (rollout, replied_at);
