"""The chain head row; on PostgreSQL, `audit_append()` and a trigger that keeps the table append-only.

`audit_append()` appends one event in a single statement: it locks the chain head, stamps the
time, computes the link hash exactly as `audit.chain.link_hash` does, inserts and moves the head.
Holding the head lock for one statement (instead of several ORM round trips) is what lets many
writers append concurrently.

Retention (archiving old events) is the one sanctioned deletion: it sets the transaction-local
`resync.audit_retention` to 'on', which only the archive procedure does, and audits itself.
The test suite's connections set `resync.allow_truncate` so Django can empty tables between tests.
"""

from django.db import migrations

GENESIS_HASH = "0" * 64

CREATE_TRIGGER = """
CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('resync.audit_retention', true) = 'on' THEN
        RETURN OLD;
    END IF;
    IF TG_OP = 'TRUNCATE' AND current_setting('resync.allow_truncate', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'audit_auditevent is append-only: %% refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_event_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_event_append_only();

CREATE TRIGGER audit_event_no_truncate
    BEFORE TRUNCATE ON audit_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only();
"""

CREATE_APPEND = """
CREATE OR REPLACE FUNCTION audit_append(
    p_actor_id integer, p_actor_label text, p_ip inet, p_request_id text, p_action text, p_target_type text,
    p_target_id text, p_target_label text, p_details jsonb, p_outcome text, p_content_hash text
) RETURNS TABLE (event_id bigint, event_sequence bigint, event_timestamp timestamptz, event_prev_hash text, event_hash text)
AS $$
DECLARE
    head record;
    ts timestamptz;
BEGIN
    SELECT h.sequence, h.hash INTO head FROM audit_auditchainhead h WHERE h.id = 1 FOR UPDATE;
    IF NOT FOUND THEN
        -- Only an emptied database lacks the head (tests flush tables). Were the head deleted
        -- under a non-empty table, sequence 1 would collide and the append fail loudly.
        INSERT INTO audit_auditchainhead (id, sequence, hash) VALUES (1, 0, repeat('0', 64)) ON CONFLICT DO NOTHING;
        SELECT h.sequence, h.hash INTO head FROM audit_auditchainhead h WHERE h.id = 1 FOR UPDATE;
    END IF;
    ts := clock_timestamp();
    event_sequence := head.sequence + 1;
    event_timestamp := ts;
    event_prev_hash := head.hash;
    event_hash := encode(sha256(convert_to(
        event_sequence::text || '|' || to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') || '+00:00'
        || '|' || head.hash || '|' || p_content_hash, 'UTF8')), 'hex');
    INSERT INTO audit_auditevent (sequence, "timestamp", actor_id, actor_label, ip_address, request_id, action,
                                  target_type, target_id, target_label, details, outcome, prev_hash, hash)
    VALUES (event_sequence, ts, p_actor_id, p_actor_label, p_ip, p_request_id, p_action, p_target_type,
            p_target_id, p_target_label, p_details, p_outcome, head.hash, event_hash)
    RETURNING id INTO event_id;
    UPDATE audit_auditchainhead SET sequence = event_sequence, hash = event_hash WHERE id = 1;
    RETURN NEXT;
END;
$$ LANGUAGE plpgsql;
"""

DROP_TRIGGER = """
DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_auditevent;
DROP TRIGGER IF EXISTS audit_event_no_update_delete ON audit_auditevent;
DROP FUNCTION IF EXISTS audit_event_append_only();
DROP FUNCTION IF EXISTS audit_append(integer, text, inet, text, text, text, text, text, jsonb, text, text);
"""


def create_head(apps, schema_editor):  # type: ignore[no-untyped-def]
    apps.get_model("audit", "AuditChainHead").objects.get_or_create(pk=1, defaults={"sequence": 0, "hash": GENESIS_HASH})


def create_trigger(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE_TRIGGER)
        schema_editor.execute(CREATE_APPEND)


def drop_trigger(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_TRIGGER)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [
        migrations.RunPython(create_head, migrations.RunPython.noop),
        migrations.RunPython(create_trigger, drop_trigger),
    ]
