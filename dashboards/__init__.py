"""Dashboards: the Dash console pages (nothing public yet)."""

__all__: list[str] = []
