-- 007: the parking periods of an escalation (issue 12). An escalation resolved by an agent is
-- parked until pending_until; a period ends when the customer confirms (outcome 'confirmed'),
-- is not satisfied ('not_satisfied'), writes again or raises a new ticket ('customer_wrote'),
-- or an agent reopens it ('reopened'). Un-parked and resolved again, it gets a new period.
-- The communication plan leaves out the time an escalation was parked.
CREATE TABLE parking (
  escalation_id INTEGER NOT NULL REFERENCES escalation(id),
  seq INTEGER NOT NULL,
  resolved_at TEXT NOT NULL,
  pending_until TEXT NOT NULL,
  ended_at TEXT,
  outcome TEXT,
  reason TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (escalation_id, seq)
);
