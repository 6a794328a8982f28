"""Work orders: routing, the six-step lifecycle, SLA timers and escalation, the audit log."""
