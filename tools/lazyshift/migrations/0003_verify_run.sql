-- lazyshift 0003: every verify run is recorded, so the stage-4 gate (`lazyshift status`)
-- can tell whether a full, clean verify has happened since the backfill finished.
CREATE TABLE IF NOT EXISTS verify_run (
  id          BIGINT       NOT NULL AUTO_INCREMENT,
  source      VARCHAR(255) NOT NULL,
  truth       VARCHAR(16)  NOT NULL,
  scope       VARCHAR(32)  NOT NULL,
  differences BIGINT       NOT NULL,
  summary     JSON         NOT NULL,
  started_at  DATETIME(6)  NOT NULL,
  finished_at DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (id),
  KEY ix_verify_run_finished (finished_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
