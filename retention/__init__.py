"""Retention that never prunes open, failed or held transactions; legal holds."""

from retention.holds import list_holds, release_hold, set_hold
from retention.plan import TablePlan, plan, prune

__all__ = ["TablePlan", "list_holds", "plan", "prune", "release_hold", "set_hold"]
