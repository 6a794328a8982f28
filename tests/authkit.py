"""Auth for tests: a bootstrap admin token and a cheap password hash (argon2id still, tiny cost)."""

from __future__ import annotations

ADMIN_TOKEN = "xl_test_admin_token_0123456789abcdef0123"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# Settings keyword arguments: the admin token plus a hash cost that keeps tests fast.
TEST_AUTH_SETTINGS: dict[str, object] = {
    "bootstrap_admin_token": ADMIN_TOKEN,
    "password_hash_time_cost": 1,
    "password_hash_memory_kib": 1024,
    "scheduler_enabled": False,
}
