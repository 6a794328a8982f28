"""Users, roles, password login, sessions and API tokens, and the per-request principal."""
