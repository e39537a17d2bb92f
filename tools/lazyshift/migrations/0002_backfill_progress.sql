-- lazyshift 0002: what the eager backfill records per partition, beyond 0001's columns.
--
-- kind:          'range' (string _ids in (lower_key, upper_key]) or 'other' (every
--                non-string _id: never mappable, dead-lettered in one pass);
-- docs_estimate: documents in the partition when it was planned (the plan's sum is the
--                MongoDB total, read-only since the flip);
-- docs_dead:     documents of the partition put into dead_letter (same transaction);
-- attempts:      how many times the partition was leased (> 1: a worker died or gave up).
-- One ALTER statement, so a failure leaves nothing half-applied.

ALTER TABLE backfill_partition
  ADD COLUMN kind          VARCHAR(16) NOT NULL DEFAULT 'range',
  ADD COLUMN docs_estimate BIGINT      NOT NULL DEFAULT 0,
  ADD COLUMN docs_dead     BIGINT      NOT NULL DEFAULT 0,
  ADD COLUMN attempts      INT         NOT NULL DEFAULT 0,
  ADD COLUMN updated_at    DATETIME(6) NULL,
  ADD COLUMN finished_at   DATETIME(6) NULL;
