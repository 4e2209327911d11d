"""Every read behind the console's pages, in one package, with bound parameters.

User input never becomes SQL text: filter values travel as ClickHouse query
parameters (``{name:Type}``), and the only names spliced into statements are
table names from the store. Reads of ``transactions`` filter on its sorting key
``(workflow, id_time, id)``: a window is a range of ``id_time`` (a transaction's
earliest event), so a page over a week of one workflow reads that week's
granules, not the table.

A transaction's status "now" follows the transactions API: an open transaction
whose deadline has passed is overdue from that instant, even between two
correlator sweeps.

One module per page's reads (``overview``, ``workflow``, ``listing`` for the
transactions grid, ``detail``, ``health``, ``trend``); every page reads through the
names below.
"""

from dashboards.queries import listing
from dashboards.queries.common import AGING_BUCKETS, DAY_NS, NS, STATUS_NOW, Scope
from dashboards.queries.detail import event_attributes, related_dead_letters
from dashboards.queries.health import Feed, dead_letter_reasons, feeds
from dashboards.queries.overview import (
    DECIDED_CANDIDATE,
    DECIDED_LOOKBACK_NS,
    DNFB_THRESHOLD_DAYS,
    Cards,
    Dnfb,
    OpenFigures,
    Outcome,
    decided_cards,
    dnfb,
    open_figures,
    outcomes,
    overdue_now,
    total_outcome,
)
from dashboards.queries.trend import TrendPoint, slo_trend
from dashboards.queries.workflow import (
    AgingBucket,
    FunnelStep,
    Latency,
    ScopeFigures,
    aging,
    most_overdue,
    scope_figures,
)

__all__ = [
    "AGING_BUCKETS",
    "DAY_NS",
    "DECIDED_CANDIDATE",
    "DECIDED_LOOKBACK_NS",
    "DNFB_THRESHOLD_DAYS",
    "NS",
    "STATUS_NOW",
    "AgingBucket",
    "Cards",
    "Dnfb",
    "Feed",
    "FunnelStep",
    "Latency",
    "OpenFigures",
    "Outcome",
    "Scope",
    "ScopeFigures",
    "TrendPoint",
    "aging",
    "dead_letter_reasons",
    "decided_cards",
    "dnfb",
    "event_attributes",
    "feeds",
    "listing",
    "most_overdue",
    "open_figures",
    "outcomes",
    "overdue_now",
    "related_dead_letters",
    "scope_figures",
    "slo_trend",
    "total_outcome",
]
