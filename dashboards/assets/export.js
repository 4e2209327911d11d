// "Export bundle" buttons (auditors): start an export job through the API with the
// session's CSRF token, show its progress, then offer the signed bundle.
(function () {
  function csrf() {
    return (document.cookie.match(/(?:^|; )_csrf_token=([^;]*)/) || [])[1] || "";
  }
  function pause(ms) {
    return new Promise((done) => setTimeout(done, ms));
  }
  async function run(button) {
    const status = document.getElementById(button.id + "-status");
    const show = (text) => { status.textContent = text; };
    button.disabled = true;
    try {
      const started = await fetch("/api/v1/exports", {
        method: "POST",
        headers: {"Content-Type": "application/json", "X-CSRFToken": csrf()},
        body: button.dataset.export,
      });
      let job = await started.json();
      if (!started.ok) { show(job.error.message); return; }
      while (job.status === "running") {
        show(`Exporting: ${job.transactions} transactions so far`);
        await pause(500);
        const polled = await fetch(`/api/v1/exports/${job.id}`);
        job = await polled.json();
        if (!polled.ok) { show(job.error.message); return; }
      }
      if (job.status !== "done") { show(`Export failed: ${job.error}`); return; }
      show(`Done: ${job.transactions} transactions, signed. `);
      const link = document.createElement("a");
      link.id = button.id + "-download";
      link.href = job.download;
      link.setAttribute("download", "");
      link.textContent = "Download the bundle";
      status.appendChild(link);
    } catch (error) {
      show(`Export failed: ${error}`);
    } finally {
      button.disabled = false;
    }
  }
  document.addEventListener("click", (event) => {
    const button = event.target.closest && event.target.closest("button[data-export]");
    if (button) {
      event.preventDefault();
      run(button);
    }
  });
})();
