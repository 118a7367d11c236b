-- Who delivers each HTTP channel, and when it last said it still does. The lease itself is a
-- session advisory lock, freed the moment the holder's session ends; a hub that lost its
-- session may still be finishing requests, so a new holder waits until the last heartbeat is
-- older than the time the old one needs to notice and stop (hub/delivery/service.py).
CREATE TABLE delivery_leases (
    lease   text        PRIMARY KEY,
    holder  text        NOT NULL,
    beat_at timestamptz NOT NULL
);
