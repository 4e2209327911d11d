"""The alerts stage: SLOs judged per facility, alerts with Alertmanager's lifecycle.

Public face for other stages (dashboards, API, CLI); nothing else is imported
across stages. ``store`` is ``stitchboard.store.Store``, ``config`` the loaded
``SlasConfig``, ``now`` an aware UTC datetime defaulting to the current time.

- ``slo_report(store, config, now=None, window=None) -> list[SloStatus]``: one
  entry per SLO x group (facility, plus the SLO's other grouping labels);
  declared facilities without judged transactions are ``no_data``. ``window``
  (e.g. ``"7d"``) overrides the SLO's own window for compliance and budget.
- ``slo_series(store, config, slo, group, start, end, step)`` -> list of
  ``(bucket start, compliance | None)``: compliance of the transactions judged
  in each bucket (None where none were).
- ``list_alerts(store, states=None, limit=500) -> list[AlertView]``.
- ``silence(store, matchers, starts_at, ends_at, author, comment) -> str`` (id;
  ``starts_at`` None = now), ``unsilence(store, silence_id, author)``,
  ``acknowledge(store, fingerprint, author) -> AlertView``,
  ``list_silences(store) -> list[dict]``, ``notification_log(store, limit=200)``.
- ``evaluate_all(store, config, notifier=None, now=None)``: one evaluation cycle;
  ``Notifier`` (the Protocol it notifies through), ``ChannelNotifier`` (the
  channels of slas.yaml), ``MemoryNotifier`` (in memory, for tests);
  ``EvaluationLoop`` (the scheduler job of ``stitchboard serve``), for tools that
  drive them (benchmarks).
- ``refresh_rollup(store, slos) -> Refresh``: bring the SLI rollup up to date
  (the evaluation does it every cycle); ``rollup_relation``: pass as
  ``slo_report(..., relation=rollup_relation)`` to count from the rollup instead
  of scanning ``transactions`` (the same figures, as of the last refresh);
  ``rollup_refreshed_at(store) -> int | None``: when the last refresh was made (ns),
  None before the first.
- ``slo_snapshot(store, slos)``: a context manager for readers; it catches the
  rollup up (under the alerts state lock) and yields a ``Snapshot`` (``relation``
  to pass to ``slo_report``/``slo_series``, ``as_of``, ``source``); count inside
  the ``with`` block. Before the rollup is first built it yields a scan of
  ``transactions``. ``slo_series(..., relation=)`` counts per minute.
"""

from alerts.actions import (
    AlertView,
    acknowledge,
    list_alerts,
    list_silences,
    notification_log,
    silence,
    unsilence,
)
from alerts.errors import AlertNotFound, AlertsError, BadSilence, SilenceNotFound
from alerts.evaluation import evaluate_all
from alerts.notifier import ChannelNotifier, MemoryNotifier, Notifier
from alerts.objectives import SloState, SloStatus, slo_report, slo_series
from alerts.rollup import Refresh, Snapshot, rollup_relation
from alerts.rollup import refresh as refresh_rollup
from alerts.rollup import refreshed_at as rollup_refreshed_at
from alerts.rollup import snapshot as slo_snapshot
from alerts.stage import EvaluationLoop

__all__ = [
    "AlertNotFound",
    "AlertView",
    "AlertsError",
    "BadSilence",
    "ChannelNotifier",
    "EvaluationLoop",
    "MemoryNotifier",
    "Notifier",
    "Refresh",
    "SilenceNotFound",
    "SloState",
    "SloStatus",
    "Snapshot",
    "acknowledge",
    "evaluate_all",
    "list_alerts",
    "list_silences",
    "notification_log",
    "refresh_rollup",
    "rollup_refreshed_at",
    "rollup_relation",
    "silence",
    "slo_report",
    "slo_series",
    "slo_snapshot",
    "unsilence",
]
