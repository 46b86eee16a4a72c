"""`fraud serve`: run the scoring API under uvicorn. Register with `app.command("serve")(serve)`.

Everything else (registry, Redis, token, rules, origin) comes from FRAUD_* environment variables,
see `fraud_assets.serving.settings`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

_NET = "Network"
_TLS = "TLS"
_RUN = "Process"


def serve(
    host: Annotated[
        str,
        typer.Option(help="Interface to listen on (0.0.0.0 for all).", rich_help_panel=_NET),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=1, max=65535, help="TCP port to listen on.", rich_help_panel=_NET)
    ] = 8000,
    tls_certfile: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            envvar="FRAUD_TLS_CERTFILE",
            help="PEM certificate: serve HTTPS. Default: FRAUD_TLS_CERTFILE.",
            rich_help_panel=_TLS,
        ),
    ] = None,
    tls_keyfile: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            envvar="FRAUD_TLS_KEYFILE",
            help="PEM private key of the certificate. Default: FRAUD_TLS_KEYFILE.",
            rich_help_panel=_TLS,
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes. More than one needs FRAUD_REDIS_URL (shared online features).",
            rich_help_panel=_RUN,
        ),
    ] = 1,
    log_level: Annotated[
        str,
        typer.Option(
            help="uvicorn log level: critical, error, warning, info, debug.", rich_help_panel=_RUN
        ),
    ] = "info",
    access_log: Annotated[
        bool,
        typer.Option(help="Log every request (one line each).", rich_help_panel=_RUN),
    ] = False,
) -> None:
    """Serve the real-time scoring API (POST /v1/score, /v1/score/batch, /v1/features,
    /v1/feedback). Without FRAUD_REDIS_URL the online state is first loaded from the lake
    (FRAUD_LAKE_URL; FRAUD_WARM_START=false skips it)."""
    import uvicorn

    from fraud_assets.serving.settings import ServiceSettings

    try:
        settings = ServiceSettings()
    except ValueError as e:
        raise typer.BadParameter(f"invalid FRAUD_* settings: {e}") from e
    if (tls_certfile is None) != (tls_keyfile is None):
        raise typer.BadParameter("--tls-certfile and --tls-keyfile must be given together")
    if workers > 1 and not settings.redis_url:
        raise typer.BadParameter(
            "--workers > 1 needs FRAUD_REDIS_URL: with the in-process feature store every worker "
            "would see only its own share of each card's history.",
            param_hint="--workers",
        )
    if tls_certfile is None:
        typer.secho(
            "Serving plain HTTP: give --tls-certfile/--tls-keyfile (or terminate TLS in front).",
            fg=typer.colors.YELLOW,
            err=True,
        )
    uvicorn.run(
        "fraud_assets.serving.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        ssl_certfile=str(tls_certfile) if tls_certfile else None,
        ssl_keyfile=str(tls_keyfile) if tls_keyfile else None,
        log_level=log_level,
        access_log=access_log,
    )
