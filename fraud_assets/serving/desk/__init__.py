"""The investigators' desk: a daily alert queue, card pages with reasons, and decisions that
become labels at once (docs/desk.md).

    desk.py     `Desk`: sees every scored transaction (a `Scorer` observer), keeps each card's
                recent ones, builds the day's queue and applies decisions (labels + audit)
    auth.py     the investigator role: FRAUD_INVESTIGATOR_TOKEN, a signed session cookie
    routes.py   the server-rendered pages (FastAPI + Jinja2 templates in templates/)
"""
