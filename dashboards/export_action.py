"""The "Export bundle" action of the console, shown to auditors only.

The button carries the selection (one transaction, or the page's filter) and
``assets/export.js`` starts the job through ``POST /api/v1/exports``, polls it
and offers the signed bundle for download. The API is the one gate: it needs
the auditor role, checks the session's CSRF token and writes the audit rows,
so a viewer who calls it anyway is refused there (403) like any other caller.
"""

from __future__ import annotations

import json
from typing import Any

from dash import html

from stitchboard.access import Caller
from stitchboard.roles import Need


def export_action(page: str, selection: dict[str, str], who: Caller | None) -> Any:
    """The button and its status line, or nothing for a caller below auditor."""
    if who is None or not who.may(Need.AUDITOR):
        return html.Span(id=f"{page}-export-none", hidden=True)
    # data-* props are open-ended in Dash, so they go in as a dict (typed Any).
    data: dict[str, Any] = {"data-export": json.dumps(selection, sort_keys=True)}
    return html.Span(
        [
            html.Button(
                "Export bundle",
                id=f"{page}-export",
                className="button secondary",
                title="A signed zip of these transactions, their hops and audit trail",
                **data,
            ),
            html.Span(id=f"{page}-export-status", className="export-status", role="status"),
        ],
        className="export-action",
    )
