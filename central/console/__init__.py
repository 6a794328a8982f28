"""The operator console: one static page fed by the alerts API and its live stream."""
