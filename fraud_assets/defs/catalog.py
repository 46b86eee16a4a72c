"""What the asset catalog says about every asset besides its data: owner, tags, code version.

`code_version` is the version of the code that decides an asset's content from the same inputs:
bump an asset's entry when that code changes (a feature definition, a cleaning rule, the review
rule), so the UI marks its materializations as made by older code.
"""

DATA_PLATFORM = "team:data-platform"  # batches, lake, online state
MODELS_TEAM = "team:fraud-models"  # training, review, drift

CODE_VERSIONS = {
    "raw_transactions": "1",
    "clean_transactions": "1",
    "quarantined_transactions": "1",
    "transaction_features": "3",  # issue 20: amount ratios, terminal_fraud_run_days, _min_amount
    "drift_report": "1",
    "terminal_registry": "1",
    "challenger_model": "2",  # issue 20: selected settings, model card, faster defaults
    "model_selection": "1",
    "champion_performance": "1",
    "champion_review": "1",
    "online_feature_state": "1",
    "fraud_labels": "1",
    "feedback_features": "1",
}


def tags(layer: str, data: str) -> dict[str, str]:
    """`layer`: where the asset sits (raw, clean, features, models, serving, monitoring);
    `data`: what its rows hold about people (raw-ids, pseudonymised, aggregates, none)."""
    return {"fraud/layer": layer, "fraud/personal-data": data}
