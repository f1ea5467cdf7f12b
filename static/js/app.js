// Small behaviours that would otherwise need inline script (forbidden by our CSP).
document.addEventListener("change", (event) => {
  const el = event.target;
  if (el instanceof HTMLSelectElement && el.hasAttribute("data-autosubmit") && el.form) {
    el.form.requestSubmit();
  }
});

// Streaming frames scroll the newest assistant bubble into view.
document.addEventListener("htmx:wsAfterMessage", () => {
  const last = document.querySelector("[data-autoscroll] > :last-child");
  if (last) last.scrollIntoView({ block: "end" });
});

// A sent prompt leaves the box empty for the next one.
document.addEventListener("htmx:wsAfterSend", (event) => {
  const form = event.target instanceof HTMLFormElement ? event.target : event.target.closest?.("form");
  const prompt = form?.querySelector("textarea[name=prompt], input[name=question]");
  if (prompt) prompt.value = "";
});
