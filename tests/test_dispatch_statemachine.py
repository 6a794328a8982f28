"""Random action sequences against the real API: nothing illegal is accepted, and the audit log
always replays to the order's current state. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from central.dispatch.service import replay_order
from tests.dispatchkit import Env, alert_msg

pytest_plugins = ["tests.dispatchkit"]

# Written out here, independently of central/dispatch/workflow.py: (state, action) -> next state.
LEGAL = {
    ("new", "accept"): "accepted", ("new", "reject"): "rejected", ("accepted", "reject"): "rejected",
    ("accepted", "verify"): "verified", ("verified", "inform"): "dispatched", ("escalated", "inform"): "dispatched",
    ("verified", "escalate"): "escalated", ("dispatched", "escalate"): "escalated",
    ("in_progress", "escalate"): "escalated", ("dispatched", "act"): "in_progress",
    ("in_progress", "feedback"): "resolved", ("resolved", "close"): "closed",
}  # fmt: skip
MAY = {
    "admin": {"accept", "verify", "reject", "inform", "escalate", "close", "act", "feedback"},
    "dispatcher": {"accept", "verify", "reject", "inform", "escalate", "close"},
    "worker": {"act", "feedback", "escalate", "close"},
}
ACTIONS = ["accept", "verify", "reject", "inform", "escalate", "act", "feedback", "close"]
WORKER = "w-lc-001-1"


def test_random_action_sequences(env: Env) -> None:
    clients = {"admin": env.admin, "dispatcher": env.user("disp", "dispatcher"), "worker": env.user("w", "worker", worker=WORKER)}
    public = env.admin.__class__(env.app)

    class Orders(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            env.clock.advance(3600)  # a fresh incident each run
            a = env.store(alert_msg(ts=env.clock.now()))
            self.order = env.order_of_alert(a.id)
            self.state = "new"
            self.assignee: str | None = None

        @rule(action=st.sampled_from(ACTIONS), who=st.sampled_from(sorted(clients)), note=st.text(max_size=20))
        def act(self, action: str, who: str, note: str) -> None:
            body = {"action": action, "note": note}
            if action == "reject":
                body["reason"] = "false_alarm"
            r = clients[who].post(f"/api/orders/{self.order['id']}/actions", json=body)
            legal = (self.state, action) in LEGAL
            visible = who != "worker" or self.assignee == WORKER
            if r.status_code == 200:
                assert legal and action in MAY[who] and visible, (self.state, action, who)
                self.state = LEGAL[(self.state, action)]
                if action == "inform":
                    self.assignee = WORKER  # the routed on-duty worker
            else:
                assert r.status_code in (403, 404, 409), r.text
                if r.status_code == 409:
                    assert not legal
                if r.status_code == 404:
                    assert not visible
                if legal and action in MAY[who] and visible:
                    raise AssertionError(f"legal {action} by {who} from {self.state} refused: {r.text}")

        @rule(rating=st.integers(min_value=1, max_value=5))
        def rate(self, rating: int) -> None:
            code = env.admin.get(f"/api/orders/{self.order['id']}").json()["rating_code"]
            r = public.post(f"/api/public/orders/{code}/rating", json={"rating": rating})
            if self.state == "closed" and r.status_code == 204:
                self.state = "closed" if rating >= 3 else "dispatched"
            else:
                assert r.status_code == 409

        @rule(minutes=st.integers(min_value=1, max_value=300))
        def time_passes(self, minutes: int) -> None:
            env.clock.advance(timedelta(minutes=minutes).total_seconds())
            assert env.admin.post("/api/sla/check").status_code == 200

        @invariant()
        def log_replays_to_current_state(self) -> None:
            current = env.admin.get(f"/api/orders/{self.order['id']}").json()
            assert current["state"] == self.state
            with env.app.state.session_factory() as session:
                snap = replay_order(session, self.order["id"])
            assert snap.state.value == current["state"]
            assert snap.assignee_worker_id == current["assignee_worker_id"]
            assert snap.escalation_level == current["escalation_level"]
            assert snap.rating == current["rating"]

    run_state_machine_as_test(
        Orders,
        settings=settings(
            max_examples=25, stateful_step_count=25, deadline=None, database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )  # fmt: skip
