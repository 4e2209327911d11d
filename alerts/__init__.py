"""Alerts: SLO evaluation and the alert lifecycle (nothing public yet)."""

__all__: list[str] = []
