"""Error answers: every 4xx/5xx is `{"detail": ...}`, a sentence naming the culprit (the API's
own checks) or FastAPI's list of field errors (a parameter or body of the wrong type)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorModel(BaseModel):
    detail: str | list[dict[str, Any]] = Field(description="what is wrong: a sentence, or one entry per bad field "
                                                           "(`loc`, `msg`, `type`)")


_WHY = {
    401: "no token, or a wrong one",
    403: "a state-changing request with the cookie alone (send the token in a header, or the server's Origin)",
    404: "no such run, attempt, log or node",
    409: "the node has ended, or cannot take this action now",
    422: "a parameter or the body is invalid (the detail names it)",
    503: "the controller did not answer in time; try again",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses` a router declares for these error codes (all with `ErrorModel`)."""
    return {code: {"model": ErrorModel, "description": _WHY[code]} for code in codes}
