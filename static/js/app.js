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
