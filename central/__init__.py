"""Xueliang central service: ingests station alerts over MQTT, stores them, serves the console."""
