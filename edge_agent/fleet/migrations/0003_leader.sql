-- fleet store, schema 3: which replica leads the rollouts and where its HTTP API is (the
-- other replicas forward rollout requests there).
CREATE TABLE leader (
    lock TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    url TEXT,
    since DOUBLE PRECISION NOT NULL
);
