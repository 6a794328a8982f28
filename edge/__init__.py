"""Xueliang edge agent: decode -> detect -> track -> rules -> events, one station per process."""
