-- lazyshift 0001: the shipment tables, the dead-letter table and the control plane.
--
-- Portable between MariaDB 10.11 and MySQL 8.0: no vendor-only syntax. `JSON` is a
-- LONGTEXT with a json_valid() check on MariaDB and a native JSON column on MySQL.
-- Every table is utf8mb4 with utf8mb4_bin, so business keys are case-sensitive and ORDER BY
-- on a key is code-point order = UTF-8 byte order = MongoDB's string order (chunked verify).
-- IF NOT EXISTS / INSERT IGNORE keep the file safe to re-run after a partial failure
-- (DDL is not transactional in MySQL).

CREATE TABLE IF NOT EXISTS shipment (
  shipment_key    VARCHAR(96)    NOT NULL,
  source          VARCHAR(32)    NOT NULL,
  tracking_number VARCHAR(64)    NULL,
  status          VARCHAR(32)    NULL,
  service_level   VARCHAR(32)    NULL,
  price_amount    DECIMAL(20,6)  NULL,
  price_currency  CHAR(3)        NULL,
  cost_amount     DECIMAL(20,6)  NULL,
  cost_currency   CHAR(3)        NULL,
  created_at      DATETIME(6)    NOT NULL,
  updated_at      DATETIME(6)    NOT NULL,
  source_seq      BIGINT         NOT NULL,
  source_rev      BIGINT         NOT NULL,
  version         BIGINT         NOT NULL,
  extra           JSON           NOT NULL,
  -- bookkeeping, not part of the document
  written_epoch   BIGINT         NULL,
  written_at      DATETIME(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  apply_count     BIGINT         NOT NULL DEFAULT 1,
  PRIMARY KEY (shipment_key),
  KEY ix_shipment_tracking (tracking_number),
  KEY ix_shipment_status_updated (status, updated_at),
  KEY ix_shipment_written_epoch (written_epoch)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS shipment_party (
  shipment_key VARCHAR(96)  NOT NULL,
  role         VARCHAR(16)  NOT NULL,
  name         VARCHAR(255) NULL,
  first_name   VARCHAR(128) NULL,
  last_name    VARCHAR(128) NULL,
  email        VARCHAR(255) NULL,
  phone        VARCHAR(64)  NULL,
  has_address  BOOLEAN      NOT NULL DEFAULT FALSE,
  street       VARCHAR(255) NULL,
  city         VARCHAR(128) NULL,
  postal_code  VARCHAR(32)  NULL,
  country      VARCHAR(64)  NULL,
  lat          DOUBLE       NULL,
  lon          DOUBLE       NULL,
  PRIMARY KEY (shipment_key, role),
  CONSTRAINT fk_party_shipment FOREIGN KEY (shipment_key)
    REFERENCES shipment (shipment_key) ON DELETE CASCADE,
  CONSTRAINT ck_party_role CHECK (role IN ('sender', 'recipient'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS shipment_item (
  shipment_key   VARCHAR(96)   NOT NULL,
  position       INT           NOT NULL,
  sku            VARCHAR(64)   NULL,
  description    VARCHAR(1024) NULL,
  quantity       INT           NOT NULL,
  weight_kg      DOUBLE        NULL,
  value_amount   DECIMAL(20,6) NULL,
  value_currency CHAR(3)       NULL,
  PRIMARY KEY (shipment_key, position),
  CONSTRAINT fk_item_shipment FOREIGN KEY (shipment_key)
    REFERENCES shipment (shipment_key) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS shipment_event (
  shipment_key VARCHAR(96)   NOT NULL,
  position     INT           NOT NULL,
  event_time   DATETIME(6)   NOT NULL,
  status       VARCHAR(64)   NOT NULL,
  location     VARCHAR(255)  NULL,
  note         VARCHAR(1024) NULL,
  PRIMARY KEY (shipment_key, position),
  CONSTRAINT fk_event_shipment FOREIGN KEY (shipment_key)
    REFERENCES shipment (shipment_key) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS dead_letter (
  id           BIGINT       NOT NULL AUTO_INCREMENT,
  origin       VARCHAR(32)  NOT NULL,
  dedup_key    VARCHAR(191) NOT NULL,
  source_seq   BIGINT       NULL,
  shipment_key VARCHAR(96)  NULL,
  reason       TEXT         NOT NULL,
  payload      LONGTEXT     NULL,
  created_at   DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (id),
  UNIQUE KEY ux_dead_letter_dedup (origin, dedup_key),
  KEY ix_dead_letter_shipment (shipment_key),
  KEY ix_dead_letter_created (created_at),
  CONSTRAINT ck_dead_letter_origin CHECK (origin IN ('stream', 'backfill', 'lazy', 'dual'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS lazyshift_control (
  id          TINYINT     NOT NULL,
  mode        VARCHAR(16) NOT NULL,
  epoch       BIGINT      NOT NULL,
  state       VARCHAR(16) NOT NULL,
  target_mode VARCHAR(16) NULL,
  flip_epoch  BIGINT      NULL,
  changed_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  note        TEXT        NULL,
  PRIMARY KEY (id),
  CONSTRAINT ck_control_singleton CHECK (id = 1),
  CONSTRAINT ck_control_state CHECK (state IN ('stable', 'draining'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The control plane starts where the service is when MySQL is installed: stage 1, `mongo`.
-- Clients deployed with MySQL settings follow this row from then on; `lazyshift mode set
-- dual` is the fenced step into stage 2.
INSERT IGNORE INTO lazyshift_control (id, mode, epoch, state, changed_at, note)
VALUES (1, 'mongo', 1, 'stable', UTC_TIMESTAMP(6), 'seeded by migration 0001');

CREATE TABLE IF NOT EXISTS client_heartbeat (
  client_id      VARCHAR(64)  NOT NULL,
  host           VARCHAR(255) NULL,
  pid            INT          NULL,
  partition_spec VARCHAR(32)  NULL,
  mode           VARCHAR(16)  NULL,
  acked_epoch    BIGINT       NULL,
  -- CONNECTION_ID() of the client's write connection: `mode set` kills it when a client
  -- stops answering while holding the control row's share lock (SIGSTOP, a hung host).
  mysql_connection_id BIGINT  NULL,
  last_seen      DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  stats          JSON         NULL,
  PRIMARY KEY (client_id),
  KEY ix_heartbeat_last_seen (last_seen)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS client_offset (
  partition_spec VARCHAR(32) NOT NULL,
  seq            BIGINT      NOT NULL,
  updated_at     DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (partition_spec)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS backfill_partition (
  id             INT         NOT NULL,
  lower_key      VARCHAR(96) NULL,
  upper_key      VARCHAR(96) NULL,
  checkpoint_key VARCHAR(96) NULL,
  status         VARCHAR(16) NOT NULL DEFAULT 'pending',
  lease_owner    VARCHAR(64) NULL,
  lease_expires  DATETIME(6) NULL,
  docs_done      BIGINT      NOT NULL DEFAULT 0,
  docs_written   BIGINT      NOT NULL DEFAULT 0,
  run_id         VARCHAR(64) NULL,
  PRIMARY KEY (id),
  KEY ix_backfill_status_lease (status, lease_expires)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS backfill_control (
  id       TINYINT     NOT NULL,
  paused   BOOLEAN     NOT NULL DEFAULT FALSE,
  max_rate DOUBLE      NULL,
  run_id   VARCHAR(64) NULL,
  PRIMARY KEY (id),
  CONSTRAINT ck_backfill_control_singleton CHECK (id = 1)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

INSERT IGNORE INTO backfill_control (id, paused, max_rate, run_id) VALUES (1, FALSE, NULL, NULL);

CREATE TABLE IF NOT EXISTS archive_record (
  id         BIGINT      NOT NULL AUTO_INCREMENT,
  location   TEXT        NOT NULL,
  doc_count  BIGINT      NOT NULL,
  sha256     CHAR(64)    NOT NULL,
  manifest   JSON        NULL,
  created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
