-- An operator may send a parked message back with its data corrected (hub dlq resubmit).
ALTER TABLE parked_audit DROP CONSTRAINT parked_audit_action_check;
ALTER TABLE parked_audit ADD CONSTRAINT parked_audit_action_check
    CHECK (action IN ('replay', 'purge', 'resubmit'));
