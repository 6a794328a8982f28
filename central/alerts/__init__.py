"""Alerts raised by station rules: storage, snapshots, listing and the live stream."""
