-- lazyshift 0008: `lazyshift mode set --hold` and `lazyshift mode release`.
--
-- lazyshift_control.held_epoch: the draining epoch whose `mode set --hold` has every client's
--   acknowledgement and now waits for a release (`lazyshift mode show` says "held").
-- lazyshift_control.released_epoch: the draining epoch an operator (or the stage 3 playbook,
--   once MongoDB's writes are revoked) released. The held transition commits only once it
--   equals its epoch. Neither needs clearing: a new transition has a new epoch.
ALTER TABLE lazyshift_control
  ADD COLUMN held_epoch     BIGINT NULL,
  ADD COLUMN released_epoch BIGINT NULL;
