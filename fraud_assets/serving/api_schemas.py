"""Request and response bodies of the scoring API (pydantic), and the errors it documents."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

from fraud_assets.serving.scoring import RawTransaction

MAX_BATCH = 1000


class Reason(BaseModel):
    feature: str
    value: float
    contribution: float = Field(description="SHAP value in log-odds units (+ pushes to fraud).")


class ScoreResponse(BaseModel):
    transaction_id: int
    fraud_probability: float | None = Field(
        description="Model probability; null only when a rule decided and no model is loaded."
    )
    decision: str = Field(description='"block", "review" (the investigators\' queue) or "allow".')
    threshold: float | None = Field(description="The served model's operating threshold.")
    review_threshold: float | None = Field(
        None, description="Scores from here up to `threshold` are sent for review."
    )
    model_version: int | None
    decided_by: str = Field(description='"model" or "rule:<name>".')
    latency_ms: float = Field(description="Time spent scoring (the whole batch for a batch).")
    rule_reason: str | None = None
    reasons: list[Reason] | None = Field(
        None, description="Top 3 SHAP contributions; only with ?explain=true."
    )
    features: dict[str, float] | None = Field(
        None, description="The feature vector the model saw; only with ?features=true."
    )


class StateAsOf(BaseModel):
    newest_transaction: str | None = Field(description="Newest transaction time in the state.")
    newest_batch: str | None = Field(description="Newest batch published into the state.")


class FeaturesResponse(BaseModel):
    transaction_id: int
    features: dict[str, float]
    state_as_of: StateAsOf


class BatchRequest(BaseModel):
    transactions: list[RawTransaction] = Field(min_length=1, max_length=MAX_BATCH)


class BatchResponse(BaseModel):
    results: list[ScoreResponse]
    model_version: int | None
    latency_ms: float


class FeedbackRequest(BaseModel):
    transaction_id: int = Field(ge=0, le=2**63 - 1)
    fraud: bool
    terminal_id: int | None = Field(
        None, ge=0, le=2**63 - 1, description="Raw terminal id; optional, checked if given."
    )
    tx_time_seconds: int | None = Field(None, ge=0, description="Optional, checked if given.")
    tx_datetime: dt.datetime | None = Field(None, description="ISO 8601; optional, checked.")


class FeedbackResponse(BaseModel):
    transaction_id: int
    tx_time_seconds: int
    fraud: bool
    status: str


class ErrorResponse(BaseModel):
    detail: Any
    reason: str | None = None


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or wrong bearer token."},
    403: {"model": ErrorResponse, "description": "A token of the other role."},
    413: {"description": "Body larger than FRAUD_MAX_BODY_BYTES."},
    503: {
        "model": ErrorResponse,
        "description": "No model loaded yet, or the online feature store is unavailable.",
    },
}


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or wrong bearer token."},
    403: {"model": ErrorResponse, "description": "A token of the other role."},
    413: {"description": "Body larger than FRAUD_MAX_BODY_BYTES."},
    503: {
        "model": ErrorResponse,
        "description": "No model loaded yet, or the online feature store is unavailable.",
    },
}
