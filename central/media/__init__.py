"""Evidence media received from stations (chunked over MQTT), its storage and its retention."""
