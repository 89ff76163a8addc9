"""Airflow's ApprovalOperator (the standard provider's Required Actions), asking only when there is
something to ask: the question, and how long to wait for an answer, come from the run itself at run
time, and the answer is handed on rather than only skipping what follows.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Param

# The Required Actions form's one field beside Approve and Reject: the reason, for the audit log.
COMMENT = "comment"


class AskedApproval(ApprovalOperator):
    """Approve or Reject, asked in Required Actions when `ask(context)` returns a question
    ({subject, body, timeout_hours}); when it returns None the task is skipped with `skip_reason`.
    `answer(context, approved, who, comment)` receives the decision (`who` None: nobody answered in
    time, which counts as Reject) and its return value is the task's."""

    def __init__(self, *, ask: Callable[[dict], dict | None], answer: Callable[..., dict], skip_reason: str,
                 **kwargs) -> None:
        kwargs.pop("params", None)  # the DAG's: they reach the task at run time; the form asks only for a reason
        super().__init__(subject="(asked at run time)", defaults=self.REJECT,
                         params={COMMENT: Param(None, type=["null", "string"], title="Why",
                                                description="Your reason, kept in the model registry's audit log")},
                         **kwargs)
        self.ask, self.answer, self.skip_reason = ask, answer, skip_reason

    def execute(self, context):
        from airflow.sdk.exceptions import AirflowSkipException

        question = self.ask(context)
        if question is None:
            raise AirflowSkipException(self.skip_reason)
        self.subject, self.body = question["subject"], question["body"]
        self.response_timeout = timedelta(hours=question["timeout_hours"])
        return super().execute(context)

    def execute_complete(self, context, event: dict):
        response = super().execute_complete(context=context, event=event)
        user = response.get("responded_by_user")
        who = None if user is None or event.get("timedout") else (user.get("name") or user.get("id"))
        return self.answer(context, approved=response["chosen_options"] == [self.APPROVE], who=who,
                           comment=(response.get("params_input") or {}).get(COMMENT))
