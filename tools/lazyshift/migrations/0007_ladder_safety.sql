-- lazyshift 0007: what the control plane needs to keep the stores from drifting apart.
--
-- lazyshift_control.reconcile_epoch: set when the mode goes dual -> mongo (MySQL stops
--   getting writes, so its copies grow stale); cleared by the reconcile that copies MongoDB
--   into MySQL after `mode set dual` again. The flip is refused while it is set.
-- archive_record.verified_at / verified_count: when the archive was read back whole and
--   matched its manifest; `mode set mysql` needs such an archive made after the last clean
--   full verify.
ALTER TABLE lazyshift_control ADD COLUMN reconcile_epoch BIGINT NULL;

ALTER TABLE archive_record
  ADD COLUMN verified_at    DATETIME(6) NULL,
  ADD COLUMN verified_count BIGINT      NULL;
