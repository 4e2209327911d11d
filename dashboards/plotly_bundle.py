"""plotly.js for the console's graphs: the cartesian bundle, cached and compressed.

Dash loads plotly.js the first time a page draws a graph, from
``PLOTLY_PATH`` (``window._dashPlotlyJSURL``), with no version in the URL: the full
bundle, 4.8 MB uncompressed, which a browser then fetches, compiles and runs
(1.6-1.9 s in headless Chromium on a busy 2-core machine) and revalidates on every
later page load. The console draws only heatmaps, bars and scatter lines, all in
plotly.js's cartesian bundle (``vendor/plotly-cartesian.min.js``, the same
plotly.js version as the plotly package, MIT licence in ``vendor/plotly-LICENSE``;
1.5 MB, about half the time to run). ``response`` serves it at that path,
gzip-compressed when the browser accepts it, with an ETag and an hour of
``Cache-Control`` so that later pages take it from the browser's cache.
"""

from __future__ import annotations

import gzip
import hashlib
from functools import cache
from pathlib import Path

from starlette.responses import Response

PLOTLY_PATH = "/_dash-component-suites/plotly/package_data/plotly.min.js"
BUNDLE = Path(__file__).resolve().parent / "vendor" / "plotly-cartesian.min.js"
MAX_AGE_S = 3600


@cache
def _bundle() -> tuple[bytes, bytes, str]:
    """The bundle, gzipped, and its ETag (read once per process)."""
    body = BUNDLE.read_bytes()
    return body, gzip.compress(body, 6, mtime=0), f'"{hashlib.sha256(body).hexdigest()[:32]}"'


def response(headers: dict[str, str]) -> Response:
    """The bundle for a request with these (lower-case) headers: 304 when the browser
    holds this version (``If-None-Match``), else the bytes, gzipped if accepted."""
    body, packed, etag = _bundle()
    common = {
        "ETag": etag,
        "Cache-Control": f"public, max-age={MAX_AGE_S}",
        "Vary": "Accept-Encoding",
    }
    if etag in headers.get("if-none-match", ""):
        return Response(status_code=304, headers=common)
    if "gzip" in headers.get("accept-encoding", ""):
        return Response(
            packed, media_type="text/javascript", headers={**common, "Content-Encoding": "gzip"}
        )
    return Response(body, media_type="text/javascript", headers=common)
