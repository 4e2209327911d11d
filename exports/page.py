"""``GET /exports``: the console page where an auditor exports transactions.

The page starts a job through ``POST /api/v1/exports`` (with the session's CSRF
token), shows its progress and links the bundle when it is done.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

from stitchboard.console_shell import page_html
from stitchboard.roles import Need, requires

BODY = """<h1>Export transactions</h1>
<p class="subtitle"><a href="/api/v1/exports/public-key">The public key</a> (verify a bundle with
<code>stitchboard export verify BUNDLE --public-key KEY</code>)</p>
<form id="export-form" class="stack panel">
<p>One transaction, every transaction with a key (a visit, charge, claim, MRN...),
or a filter.</p>
<label>Transaction id<input name="transaction_id" id="export-transaction"></label>
<label>Key<input name="key" id="export-key"></label>
<label>Workflow<input name="workflow" id="export-workflow"></label>
<label>Facility<input name="facility" id="export-facility"></label>
<label>Status<input name="status" id="export-status-filter"
  placeholder="in_progress, complete, late, overdue, failed"></label>
<label>Flag<input name="flag" id="export-flag"
  placeholder="missing_step, out_of_order, duplicate_step, unexpected_step"></label>
<label>Since (ISO 8601)<input name="since" id="export-since"></label>
<label>Until (ISO 8601)<input name="until" id="export-until"></label>
<button type="submit" id="export-start" class="button">Export</button>
</form>
<p id="export-status" role="status"></p>
<p><a id="export-download" hidden download>Download the bundle</a></p>
<script>
const form = document.getElementById("export-form");
const status = document.getElementById("export-status");
const link = document.getElementById("export-download");
function csrf() {
  return (document.cookie.match(/(?:^|; )_csrf_token=([^;]*)/) || [])[1] || "";
}
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  link.hidden = true;
  const body = {};
  for (const [name, value] of new FormData(form)) { if (value.trim()) body[name] = value.trim(); }
  const started = await fetch("/api/v1/exports", {method: "POST",
    headers: {"Content-Type": "application/json", "X-CSRFToken": csrf()},
    body: JSON.stringify(body)});
  let job = await started.json();
  if (!started.ok) { status.textContent = job.error.message; return; }
  while (job.status === "running") {
    status.textContent = `Exporting: ${job.transactions} transactions so far`;
    await new Promise((done) => setTimeout(done, 500));
    job = await (await fetch(`/api/v1/exports/${job.id}`)).json();
  }
  if (job.status !== "done") { status.textContent = `Export failed: ${job.error}`; return; }
  status.textContent = `Done: ${job.transactions} transactions, signed.`;
  link.href = job.download;
  link.hidden = false;
});
</script>
"""


def mount(app: FastAPI) -> None:
    @requires(Need.AUDITOR)
    async def exports_page(request: Request) -> HTMLResponse:
        return HTMLResponse(page_html("Exports", BODY, request.state.principal))

    app.add_api_route("/exports", exports_page, methods=["GET"], include_in_schema=False)
