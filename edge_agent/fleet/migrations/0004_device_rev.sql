-- fleet store, schema 4: a revision per device, raised by every write of its row and its
-- streams. A replica keeps the rows it wrote in memory with their revision and, inside each
-- batch's transaction, reads back (locked) only the revisions: a row another replica changed
-- since (a different revision) is read again, the others are written from memory.
-- 0: no data yet (a placeholder row a replica locks for a device nobody stored).
ALTER TABLE devices ADD COLUMN rev BIGINT NOT NULL DEFAULT 0;
UPDATE devices SET rev = 1 WHERE first_seen IS NOT NULL;
