-- A channel's cancellation that overtook its order (webhooks arrive unordered): kept until the
-- order arrives, which is then recorded as cancelled, never reserved, never sent to the ERP.
CREATE TABLE early_cancellations (
    order_id         text        PRIMARY KEY,
    channel          text        NOT NULL,
    channel_order_id text        NOT NULL,
    cancelled_by     text        NOT NULL,
    reason           text        NOT NULL,
    message_id       text,
    at               timestamptz NOT NULL
);
