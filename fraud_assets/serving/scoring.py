"""Score raw transactions: validate, rules, pseudonymise, online features, champion model.

Shared by the REST API (`app.py`) and the stream worker (`stream.py`); no web framework here.

Public API
    RawTransaction        the raw transaction as clients send it (pydantic; raw ids)
    Feedback              a label for a transaction (pydantic)
    Scorer(store, model_source, rules=None, pseudonymizer=None, origin=2018-04-01)
        .score_one(raw, explain=False, features=False) -> dict
        .score_many(raws, explain=False, features=False) -> list[dict]   one model call
        .features_many(raws) -> list[dict]   the feature vectors only (no model needed)
        .feedback(transaction_id, fraud, terminal_id=None, tx_time_seconds=None, ...)
    InvalidTransaction    (ValueError) bad input; `.errors` lists the fields, `.index` the item
    UnknownTransaction    (LookupError) a label for a transaction the platform has not seen
    ModelNotReady         (RuntimeError) no model loaded yet
    FeatureStoreUnavailable (RuntimeError) the online feature store failed (e.g. Redis down)

Decision vocabulary: "block" (fraud_probability >= threshold, or a rule fired), "review"
(review_threshold <= fraud_probability < threshold: the investigators' queue; only when the
served version carries a review threshold) or "allow". Both thresholds travel with the version.
`decided_by` is "model" or "rule:<name>" (see `rules.py`). A rule-decided transaction is still
recorded in the online feature store (it happened: the batch data holds it too) and still
scored when a model is loaded, so its probability is reported for monitoring.

Time: `tx_time_seconds` is the number of seconds from midnight of the origin date
(FRAUD_ORIGIN_DATE) to `tx_datetime`, computed here when the client omits it. When the client
sends it, it must agree with `tx_datetime` (otherwise the windows and the calendar features
would describe different moments; the batch pipeline recomputes it from the timestamp too).
Aware datetimes are converted to UTC; naive ones are taken as the data's wall clock.

Batches: every item is validated (time guard included) before anything is recorded; features
are then computed one transaction at a time in (tx_time_seconds, transaction_id) order -- the
order the batch features use -- and results come back in request order. An id that appears
twice in one batch is counted once: every occurrence gets the first occurrence's result.

Time guard: a transaction later than the wall clock plus the skew, or outside the store's
guard (`online_features.TimeRefused`), is invalid (422 naming `tx_datetime`).

Labels: `feedback` accepts a label only for a transaction the online store holds (scored
online, or published from a batch by the `online_feature_state` asset) and takes its terminal
and time from there (given ones must agree). It is appended to the durable label log first,
then applied to the store.

`reasons` (explain=True): the three largest CatBoost SHAP contributions (log-odds units) as
{"feature", "value", "contribution"}, largest absolute contribution first.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from fraud_assets.privacy import Pseudonymizer
from fraud_assets.serving.feedback_state import FeedbackState, RedisFeedbackState
from fraud_assets.serving.labels import LabelLog
from fraud_assets.serving.model_source import LoadedModel, ModelSource
from fraud_assets.serving.online_features import OnlineFeatureStore, TimeRefused, Transaction
from fraud_assets.serving.rules import ALLOW, BLOCK, REVIEW, RuleDecision, RuleSet
from fraud_assets.serving.settings import DEFAULT_ORIGIN

# Called after each scored group: (prepared, feature vectors, results), index-aligned.
ScoredObserver = Callable[[Sequence["Prepared"], Sequence[Any], Sequence[Any]], None]

INT64_MAX = 2**63 - 1
MAX_AMOUNT = 1e12  # anything above is a client bug, not a payment
MAX_SPAN = dt.timedelta(days=365 * 200)  # tx_datetime must lie within 200 years of the origin
MAX_SECONDS = int(MAX_SPAN.total_seconds())
TOP_REASONS = 3


def _store_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OSError]  # ConnectionError, TimeoutError, socket errors
    try:
        from redis.exceptions import RedisError

        errors.append(RedisError)
    except ImportError:  # pragma: no cover - redis is a dependency
        pass
    return tuple(errors)


STORE_ERRORS = _store_errors()


class InvalidTransaction(ValueError):
    """The input is invalid. `errors` are pydantic-style dicts whose `loc` names the field."""

    def __init__(self, errors: list[dict[str, Any]], index: int | None = None) -> None:
        self.errors = errors
        self.index = index
        where = f"item {index}: " if index is not None else ""
        text = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())) or 'body'}: {e.get('msg')}"
            for e in errors
        )
        super().__init__(where + text)


class UnknownTransaction(LookupError):
    """A label for a transaction id the platform has not seen (or no longer holds)."""


class ModelNotReady(RuntimeError):
    """No model has been loaded yet (no champion, or the registry has been unreachable)."""


class FeatureStoreUnavailable(RuntimeError):
    """The online feature store failed; the transaction could not be scored."""


def _naive_utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        return value
    try:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    except (OverflowError, ValueError) as e:
        raise ValueError(f"cannot convert {value.isoformat()} to UTC") from e


def _origin(info: ValidationInfo) -> dt.datetime | None:
    context = info.context
    return context.get("origin") if isinstance(context, Mapping) else None


def _check_in_range(value: dt.datetime, origin: dt.datetime | None) -> None:
    if origin is None:
        return
    if value < origin:
        raise ValueError(
            f"is before the data origin {origin.date()} (FRAUD_ORIGIN_DATE); "
            "tx_time_seconds would be negative"
        )
    if value - origin > MAX_SPAN:
        raise ValueError(f"is more than 200 years after the data origin {origin.date()}")


def seconds_since(value: dt.datetime, origin: dt.datetime) -> int:
    return (value - origin) // dt.timedelta(seconds=1)


def _check_seconds(seconds: int | None, info: ValidationInfo) -> int | None:
    origin, when = _origin(info), info.data.get("tx_datetime")
    if seconds is None or origin is None or when is None:
        return seconds
    expected = seconds_since(when, origin)
    if seconds != expected:
        raise ValueError(
            f"{seconds} disagrees with tx_datetime {when.isoformat()}: expected {expected} "
            f"seconds since the origin {origin.date()} (FRAUD_ORIGIN_DATE); omit it to have "
            "it computed"
        )
    return seconds


class RawTransaction(BaseModel):
    """A transaction as the bank sends it, with raw (not pseudonymised) ids."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "transaction_id": 1754155,
                    "tx_datetime": "2018-09-30 12:14:37",
                    "customer_id": 4097,
                    "terminal_id": 3571,
                    "tx_amount": 57.16,
                }
            ]
        },
    )

    transaction_id: int = Field(ge=0, le=INT64_MAX, description="Global transaction id.")
    tx_datetime: dt.datetime = Field(
        description="When it happened: ISO 8601 ('2018-09-30T12:14:37' or with a space); "
        "an offset is converted to UTC."
    )
    customer_id: int = Field(ge=0, le=INT64_MAX, description="Raw customer (card) id.")
    terminal_id: int = Field(ge=0, le=INT64_MAX, description="Raw terminal id.")
    tx_amount: float = Field(gt=0, le=MAX_AMOUNT, allow_inf_nan=False, description="Amount.")
    tx_time_seconds: int | None = Field(
        None,
        ge=0,
        le=MAX_SECONDS,
        description="Seconds since the data origin (FRAUD_ORIGIN_DATE); computed from "
        "tx_datetime when omitted, and must agree with it when given.",
    )

    @field_validator("tx_datetime")
    @classmethod
    def _datetime(cls, value: dt.datetime, info: ValidationInfo) -> dt.datetime:
        value = _naive_utc(value)
        _check_in_range(value, _origin(info))
        return value

    @field_validator("tx_time_seconds")
    @classmethod
    def _seconds(cls, value: int | None, info: ValidationInfo) -> int | None:
        return _check_seconds(value, info)


class Feedback(BaseModel):
    """The bank's verdict on one transaction the platform has seen: feeds the terminal risk
    features and the `fraud_labels` table."""

    model_config = ConfigDict(extra="ignore")

    transaction_id: int = Field(ge=0, le=INT64_MAX)
    fraud: bool = Field(description="True: confirmed fraud; False: genuine (corrects a label).")
    terminal_id: int | None = Field(
        None, ge=0, le=INT64_MAX, description="Raw terminal id; optional, must match if given."
    )
    tx_time_seconds: int | None = Field(
        None, ge=0, le=MAX_SECONDS, description="Seconds since the origin; optional check."
    )
    tx_datetime: dt.datetime | None = Field(
        None, description="When the transaction happened; optional, must match if given."
    )

    @field_validator("tx_datetime")
    @classmethod
    def _datetime(cls, value: dt.datetime | None, info: ValidationInfo) -> dt.datetime | None:
        if value is None:
            return None
        value = _naive_utc(value)
        _check_in_range(value, _origin(info))
        return value


@dataclass(frozen=True, slots=True)
class Prepared:
    """A validated transaction, ready for features and the model (see `Scorer.prepare`)."""

    raw: RawTransaction
    tx: Transaction  # pseudonymised
    rule: RuleDecision | None
    received: float  # time.perf_counter() when it was validated: latency_ms counts from here


def _validate(model: type[BaseModel], raw: Any, origin: dt.datetime, index: int | None) -> Any:
    if isinstance(raw, BaseModel):
        raw = raw.model_dump()
    try:
        return model.model_validate(raw, context={"origin": origin})
    except ValidationError as e:
        errors = e.errors(include_url=False, include_context=False, include_input=False)
        raise InvalidTransaction(errors, index) from e


class Scorer:
    """Rules, online features and the served model, for one transaction or a batch."""

    def __init__(
        self,
        store: OnlineFeatureStore,
        model_source: ModelSource,
        rules: RuleSet | None = None,
        pseudonymizer: Pseudonymizer | None = None,
        origin: dt.date | dt.datetime = DEFAULT_ORIGIN,
        label_log: LabelLog | None = None,
        feedback_state: FeedbackState | RedisFeedbackState | None = None,
        observers: Sequence[ScoredObserver] = (),
    ) -> None:
        self.store = store
        self.label_log = label_log
        # Optional: the feedback features (labels usable from the moment they are recorded)
        # join every vector; and observers (the investigators' desk) see every scored item.
        self.feedback_state = feedback_state
        self.observers = list(observers)
        self.model_source = model_source
        self.rules = rules or RuleSet()
        self.pseudonymizer = pseudonymizer or Pseudonymizer()
        if not isinstance(origin, dt.datetime):
            origin = dt.datetime.combine(origin, dt.time())
        self.origin = origin

    # -- scoring --------------------------------------------------------------------------------

    def score_one(
        self,
        raw: Mapping[str, Any] | RawTransaction,
        explain: bool = False,
        features: bool = False,
    ) -> dict:
        try:
            return self.score_many([raw], explain=explain, features=features)[0]
        except InvalidTransaction as e:
            raise InvalidTransaction(e.errors) from e  # a single item has no index

    def score_many(
        self,
        raws: Sequence[Mapping[str, Any] | RawTransaction],
        explain: bool = False,
        features: bool = False,
    ) -> list[dict]:
        """Validate all, check the time guard for all, then score; raises the first error."""
        prepared = self._prepare_all(raws)
        return _raise_first(self.score_prepared(prepared, explain=explain, features=features))

    def features_many(self, raws: Sequence[Mapping[str, Any] | RawTransaction]) -> list[dict]:
        """The feature vector of each transaction, recorded as a scored one would be."""
        prepared = self._prepare_all(raws)
        as_of = self._state_as_of()
        vectors = _raise_first(self._features_by_item(prepared))
        return [
            {"transaction_id": p.raw.transaction_id, "features": f, "state_as_of": as_of}
            for p, f in zip(prepared, vectors, strict=True)
        ]

    def _prepare_all(self, raws: Sequence[Mapping[str, Any] | RawTransaction]) -> list[Prepared]:
        prepared = [self.prepare(raw, i) for i, raw in enumerate(raws)]
        if len(prepared) > 1:  # nothing of a batch is recorded when one item is refused
            clock = self._call_store(self.store.clock)
            for i, p in enumerate(prepared):
                try:
                    self.store.guard(p.tx, clock)
                except TimeRefused as e:
                    raise _time_error(e, i) from e
        return prepared

    def _state_as_of(self) -> dict[str, Any]:
        clock = self._call_store(self.store.clock)
        newest = None if clock is None else (self.origin + dt.timedelta(seconds=clock)).isoformat()
        return {
            "newest_transaction": newest,
            "newest_batch": self._call_store(self.store.newest_batch),
        }

    def prepare(
        self, raw: Mapping[str, Any] | RawTransaction, index: int | None = None
    ) -> Prepared:
        """Validate, pseudonymise and apply the rules; records nothing yet.

        Raises InvalidTransaction (with `index`, the item's place in a batch, if given).
        """
        received = time.perf_counter()
        tx_in: RawTransaction = _validate(RawTransaction, raw, self.origin, index)
        seconds = tx_in.tx_time_seconds
        if seconds is None:
            seconds = seconds_since(tx_in.tx_datetime, self.origin)
        tx = Transaction(
            transaction_id=tx_in.transaction_id,
            tx_datetime=tx_in.tx_datetime,
            customer_id=self.pseudonymizer.one("customer", tx_in.customer_id),
            terminal_id=self.pseudonymizer.one("terminal", tx_in.terminal_id),
            tx_amount=tx_in.tx_amount,
            tx_time_seconds=seconds,
        )
        limit = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(
            seconds=self.store.max_skew_seconds
        )
        if tx_in.tx_datetime > limit:
            raise InvalidTransaction(
                [
                    {
                        "loc": ["tx_datetime"],
                        "msg": f"is in the future: later than now (UTC) plus "
                        f"{self.store.max_skew_seconds} s (FRAUD_MAX_CLOCK_SKEW_SECONDS)",
                        "type": "time_guard",
                    }
                ],
                index,
            )
        rule = self.rules.evaluate(tx_in.customer_id, tx_in.terminal_id, tx_in.tx_amount)
        return Prepared(tx_in, tx, rule, received)

    def score_prepared(
        self, prepared: Sequence[Prepared], explain: bool = False, features: bool = False
    ) -> list[dict | InvalidTransaction]:
        """Features (recorded in the online store) and one model call for all of `prepared`.

        Results come in the order given; each item's `latency_ms` runs from its `received`.
        An item the store's time guard refuses gets its InvalidTransaction in its place.
        """
        if not prepared:
            return []
        loaded = self.model_source.current  # read once: the whole batch uses one version
        if loaded is None and any(p.rule is None for p in prepared):
            raise ModelNotReady(self._not_ready_message())

        vectors = self._features_by_item(prepared)
        ok = [i for i, v in enumerate(vectors) if not isinstance(v, InvalidTransaction)]
        probabilities: list[float | None] = [None] * len(prepared)
        reasons: list[list[dict[str, Any]]] = [[] for _ in prepared]
        if loaded is not None and ok:
            x = np.array(
                [[vectors[i][name] for name in loaded.feature_names] for i in ok],  # type: ignore[index]
                dtype=np.float64,
            )
            for i, probability in zip(ok, loaded.probabilities(x), strict=True):
                probabilities[i] = probability
            if explain:
                for i, r in zip(ok, _top_reasons(loaded, x), strict=True):
                    reasons[i] = r
        finished = time.perf_counter()

        out: list[dict | InvalidTransaction] = []
        for i, p in enumerate(prepared):
            vector = vectors[i]
            if isinstance(vector, InvalidTransaction):
                out.append(vector)
                continue
            probability = probabilities[i]
            if p.rule is not None:
                decision, decided_by = p.rule.decision, p.rule.decided_by
            else:
                assert loaded is not None and probability is not None
                decision = _outcome(probability, loaded)
                decided_by = "model"
            result: dict[str, Any] = {
                "transaction_id": p.raw.transaction_id,
                "fraud_probability": probability,
                "decision": decision,
                "threshold": loaded.threshold if loaded else None,
                "review_threshold": loaded.review_threshold if loaded else None,
                "model_version": loaded.version if loaded else None,
                "decided_by": decided_by,
                "latency_ms": (finished - p.received) * 1000.0,
            }
            if p.rule is not None:
                result["rule_reason"] = p.rule.reason
            if explain:
                result["reasons"] = reasons[i]
            if features:
                result["features"] = vector
            out.append(result)
        for observer in self.observers:
            observer(prepared, vectors, out)
        return out

    def _features_by_item(
        self, prepared: Sequence[Prepared]
    ) -> list[dict[str, float | int] | InvalidTransaction]:
        """Each item's features, computed once per transaction id (the first occurrence), in
        (time, id) order; a later occurrence of an id shares the first one's vector."""
        first: dict[int, int] = {}
        for i, p in enumerate(prepared):
            first.setdefault(p.tx.transaction_id, i)
        unique = sorted(
            first.values(),
            key=lambda i: (prepared[i].tx.tx_time_seconds, prepared[i].tx.transaction_id),
        )
        computed = self._call_store(self.store.features_for_many, [prepared[i].tx for i in unique])
        by_id: dict[int, dict[str, float | int] | InvalidTransaction] = {}
        if self.feedback_state is not None:
            accepted = [f for f in computed if not isinstance(f, TimeRefused)]
            keys = [
                (p.tx.customer_id, p.tx.terminal_id, p.tx.tx_time_seconds)
                for p, f in zip((prepared[i] for i in unique), computed, strict=True)
                if not isinstance(f, TimeRefused)
            ]
            extra = self._call_store(self.feedback_state.features_for_many, keys)
            for f, more in zip(accepted, extra, strict=True):
                f.update(more)
        for i, f in zip(unique, computed, strict=True):
            by_id[prepared[i].tx.transaction_id] = (
                _time_error(f, i) if isinstance(f, TimeRefused) else f
            )
        return [by_id[p.tx.transaction_id] for p in prepared]

    def _call_store(self, method: Any, *args: Any) -> Any:
        try:
            return method(*args)
        except STORE_ERRORS as e:
            raise FeatureStoreUnavailable(
                f"online feature store unavailable: {type(e).__name__}: {e}"
            ) from e

    def _not_ready_message(self) -> str:
        status = self.model_source.status()
        why = status.last_error or "no model has been loaded yet"
        return f"no model is being served: {why}"

    # -- feedback -------------------------------------------------------------------------------

    def feedback(
        self,
        transaction_id: int,
        fraud: bool,
        terminal_id: int | None = None,
        tx_time_seconds: int | None = None,
        tx_datetime: dt.datetime | str | None = None,
        source: str = "api",
    ) -> dict[str, Any]:
        """Record the bank's label for a transaction the platform has seen: label log first,
        then the online store. Raises UnknownTransaction, InvalidTransaction."""
        label: Feedback = _validate(
            Feedback,
            {
                "transaction_id": transaction_id,
                "fraud": fraud,
                "terminal_id": terminal_id,
                "tx_time_seconds": tx_time_seconds,
                "tx_datetime": tx_datetime,
            },
            self.origin,
            None,
        )
        seen = self._call_store(self.store.seen, label.transaction_id)
        if seen is None:
            raise UnknownTransaction(
                f"transaction {label.transaction_id} has not been seen by the platform (neither "
                "scored online nor published from a batch in the last "
                f"{self.store.terminal_retention // 86_400} days); its label is not recorded"
            )
        errors = []
        if label.terminal_id is not None and (
            self.pseudonymizer.one("terminal", label.terminal_id) != seen.terminal_id
        ):
            errors.append({"loc": ["terminal_id"], "msg": "is not the transaction's terminal"})
        seconds = label.tx_time_seconds
        if seconds is None and label.tx_datetime is not None:
            seconds = seconds_since(label.tx_datetime, self.origin)
        if seconds is not None and seconds != seen.tx_time_seconds:
            where = "tx_time_seconds" if label.tx_time_seconds is not None else "tx_datetime"
            errors.append({"loc": [where], "msg": "is not the transaction's time"})
        if errors:
            raise InvalidTransaction([{**e, "type": "value_error"} for e in errors])
        # The data clock when the label is recorded: from then on it may be used (feedback
        # features, training); see features/feedback.py.
        known_at = self._call_store(self.store.clock)
        if known_at is None:
            known_at = seen.tx_time_seconds
        if self.label_log is not None:
            self.label_log.append(
                {
                    "transaction_id": seen.transaction_id,
                    "customer_id": seen.customer_id,
                    "terminal_id": seen.terminal_id,
                    "tx_time_seconds": seen.tx_time_seconds,
                    "tx_datetime": seen.tx_datetime.isoformat(),
                    "fraud": label.fraud,
                    "labelled_at": dt.datetime.now(dt.UTC).isoformat(),
                    "source": source,
                    "known_at_seconds": known_at,
                }
            )
        self._call_store(self.store.record_label, label.transaction_id, label.fraud)
        if self.feedback_state is not None:
            self._call_store(
                self.feedback_state.record,
                seen.transaction_id,
                seen.customer_id,
                seen.terminal_id,
                seen.tx_time_seconds,
                label.fraud,
                known_at,
            )
        return {
            "transaction_id": label.transaction_id,
            "tx_time_seconds": seen.tx_time_seconds,
            "fraud": label.fraud,
            "status": "recorded",
        }


def _outcome(probability: float, loaded: LoadedModel) -> str:
    """block at or above the threshold; review in [review_threshold, threshold); else allow."""
    if probability >= loaded.threshold:
        return BLOCK
    review = loaded.review_threshold
    return REVIEW if review is not None and probability >= review else ALLOW


def _time_error(e: TimeRefused, index: int | None) -> InvalidTransaction:
    return InvalidTransaction(
        [{"loc": ["tx_datetime"], "msg": str(e), "type": "time_guard"}], index
    )


def _raise_first(results: list[Any]) -> list[Any]:
    for r in results:
        if isinstance(r, InvalidTransaction):
            raise r
    return results


def _top_reasons(loaded: LoadedModel, x: np.ndarray) -> list[list[dict[str, Any]]]:
    from catboost import Pool

    names = list(loaded.feature_names)
    shap = loaded.model.get_feature_importance(
        Pool(x, feature_names=names), type="ShapValues"
    )  # (n, features + 1): the last column is the expected value
    out = []
    for row, contributions in zip(x, shap[:, :-1], strict=True):
        top = np.argsort(-np.abs(contributions), kind="stable")[:TOP_REASONS]
        out.append(
            [
                {
                    "feature": names[j],
                    "value": float(row[j]),
                    "contribution": float(contributions[j]),
                }
                for j in top
            ]
        )
    return out
