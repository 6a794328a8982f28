"""Fleet health (stations and cameras: online, last seen, fps, queue, outbox) and station commands."""
