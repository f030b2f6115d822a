-- The identity of each revision: a random tag drawn by the write transaction that committed it,
-- recorded with its audit event (there is one per revision, and audit rows are never changed).
-- A restore from a backup, or a failover that lost commits, replaces the history and reuses
-- revision numbers; the tags tell two histories apart, so an instance that applied the old one
-- notices and starts afresh, and a revision token from the old one is refused. NULL for the
-- revisions committed before this migration (they are compared by number only).
ALTER TABLE audit_events ADD COLUMN tag BIGINT;
