-- The parking lot: every message parked in hub.dead, kept until an operator replays or purges it.
-- No retention: rows never expire. The fingerprint makes moving a message from the queue into
-- this table idempotent (a crash between insert and ack only repeats the insert).

CREATE TABLE parked (
    id                   bigserial   PRIMARY KEY,
    fingerprint          text        NOT NULL UNIQUE,
    message_id           text,
    message_type         text,
    source               text,
    channel              text,
    error_type           text        NOT NULL,
    error                text        NOT NULL,
    failed_queue         text,
    attempts             int         NOT NULL DEFAULT 0,
    original_exchange    text        NOT NULL,
    original_routing_key text        NOT NULL,
    correlation_id       text,
    reply_to             text,
    headers              jsonb       NOT NULL,
    body                 bytea       NOT NULL,
    first_failed_at      timestamptz,
    parked_at            timestamptz NOT NULL,
    stored_at            timestamptz NOT NULL DEFAULT now(),
    status               text        NOT NULL DEFAULT 'parked'
                         CHECK (status IN ('parked', 'replayed')),
    replayed_at          timestamptz,
    replays              int         NOT NULL DEFAULT 0
);
CREATE INDEX parked_open ON parked (status, error_type, parked_at);
CREATE INDEX parked_channel ON parked (channel, parked_at);

-- One line per operator action (replay, purge), kept after the parked row itself is purged.
CREATE TABLE parked_audit (
    id          bigserial   PRIMARY KEY,
    parked_id   bigint      NOT NULL,
    action      text        NOT NULL CHECK (action IN ('replay', 'purge')),
    message_id  text,
    error_type  text,
    destination text,
    actor       text        NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX parked_audit_parked_id ON parked_audit (parked_id);
