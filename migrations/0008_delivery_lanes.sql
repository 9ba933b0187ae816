-- The dispatcher finds each lane's oldest pending delivery by walking this index (a loose
-- index scan), so a backlog of thousands costs a few lookups per lane, not a scan per row.
CREATE INDEX deliveries_lanes ON deliveries (webhook_id, state, lane, event_seq);
