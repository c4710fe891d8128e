"""The human approval between a PROMOTE gate decision and the production move (Airflow 3 HITL).

With ``require_approval`` (Param, else ``NEWS_SIGNALS_REQUIRE_APPROVAL``) the gate branches to
``approve_promotion`` instead of promoting. That task is the standard provider's
``HITLBranchOperator``: its body is the gate table, "Approve" continues to ``register_and_promote``,
"Reject" to ``register_only``, and no answer within the timeout counts as "Reject" (its default),
so production stays where it is unless a person says otherwise; the candidate is registered either
way. The answer (who, when, timed out) goes to XCom key ``approval`` and into the registered
version's gate record and the promotion history.

This module imports the Airflow provider, so only the DAG file imports it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import HITLBranchOperator

APPROVE, REJECT = "Approve", "Reject"
XCOM_KEY = "approval"


def approval_record(event: dict[str, Any]) -> dict[str, Any]:
    """The answer as a small JSON-able record: approved, by (user name or None), at, timed_out."""
    user = event.get("responded_by_user") or {}
    at = event.get("responded_at")
    return {
        "approved": list(event.get("chosen_options") or []) == [APPROVE],
        "by": user.get("name") or user.get("id"),
        "at": at.isoformat() if hasattr(at, "isoformat") else at,
        "timed_out": bool(event.get("timedout")),
    }


class PromotionApproval(HITLBranchOperator):
    """Approve → ``promote_task``; Reject or no answer within ``timeout`` → ``keep_task``."""

    def __init__(self, *, promote_task: str, keep_task: str, timeout: timedelta, **kwargs: Any) -> None:
        super().__init__(
            options=[APPROVE, REJECT],
            options_mapping={APPROVE: promote_task, REJECT: keep_task},
            defaults=[REJECT],
            multiple=False,
            response_timeout=timeout,
            execution_timeout=None,  # the wait is bounded by response_timeout, not the DAG's task timeout
            **kwargs,
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        if "error" not in event:
            record = approval_record(event)
            context["ti"].xcom_push(key=XCOM_KEY, value=record)
            self.log.info(
                "promotion %s by %s%s",
                "approved" if record["approved"] else "rejected",
                record["by"] or "nobody",
                " (no answer before the timeout)" if record["timed_out"] else "",
            )
        return super().execute_complete(context=context, event=event)
