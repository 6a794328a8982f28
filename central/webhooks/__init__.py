"""Outgoing webhooks on order events (grid platform, 12345 hotline): signed, retried with backoff."""
