// Research pages: citation links open the source panel, follow-up suggestions fill the
// question box, and finished ingestion jobs refresh the source list. No inline script (CSP).
(() => {
  const CITATION = /^\/research\/messages\/\d+\/sources\/\d+\/$/;

  document.addEventListener("click", (event) => {
    const link = event.target instanceof Element ? event.target.closest("a[href]") : null;
    const panel = document.getElementById("source-panel");
    if (link && panel && !link.hasAttribute("hx-get")) {
      const url = new URL(link.href, window.location.href);
      if (url.origin === window.location.origin && CITATION.test(url.pathname) && window.htmx) {
        event.preventDefault();
        window.htmx.ajax("GET", url.pathname, { target: "#source-panel", swap: "innerHTML" });
        return;
      }
    }
    const followup = event.target instanceof Element ? event.target.closest("[data-followup]") : null;
    const box = document.getElementById("ask-question");
    if (followup && box) {
      box.value = followup.getAttribute("data-followup") || "";
      box.focus();
    }
  });

  document.addEventListener("htmx:wsAfterSend", (event) => {
    const form = event.target instanceof Element ? event.target.closest("#ask-form") : null;
    const box = document.getElementById("ask-question");
    if (form && box) box.value = "";
  });

  const announce = (dispatch) => {
    document.querySelectorAll(".job[data-status=succeeded], .job[data-status=failed]").forEach((job) => {
      if (job.hasAttribute("data-announced")) return;
      job.setAttribute("data-announced", "");
      if (dispatch) document.body.dispatchEvent(new CustomEvent("job-finished", { bubbles: true }));
    });
  };
  document.addEventListener("DOMContentLoaded", () => announce(false));
  document.addEventListener("htmx:afterSettle", () => announce(true));
})();
