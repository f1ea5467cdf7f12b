// Planning pages: behaviours that would otherwise need inline script (forbidden by our CSP).

// htmx leaves 4xx responses unswapped; an edit form marked data-swap-errors wants its
// 409 (edit conflict) or 400 (invalid input) partial shown in place, with the message.
document.addEventListener("htmx:beforeSwap", (event) => {
  const status = event.detail.xhr.status;
  const elt = event.detail.elt;
  if ((status === 409 || status === 400) && elt instanceof Element && elt.closest("[data-swap-errors]")) {
    event.detail.shouldSwap = true;
    event.detail.isError = false;
  }
});

// Board drag and drop (native HTML5). A card dropped on another column submits its own
// status form through htmx, so the change goes to the same endpoint, with the same CSRF
// token and board partial, as the ◀/▶ buttons, which stay the keyboard and no-JS path.
let draggedCard = null;

const boardColumn = (event) =>
  event.target instanceof Element ? event.target.closest("#board section[data-status]") : null;

document.addEventListener("dragstart", (event) => {
  const card = event.target instanceof Element ? event.target.closest("#board article[draggable=true]") : null;
  if (!card) return;
  draggedCard = card;
  event.dataTransfer.setData("text/plain", card.dataset.task);
  event.dataTransfer.effectAllowed = "move";
  card.classList.add("dragging");
});

document.addEventListener("dragend", () => {
  draggedCard?.classList.remove("dragging");
  draggedCard = null;
  document.querySelectorAll("#board .drop-target").forEach((el) => el.classList.remove("drop-target"));
});

document.addEventListener("dragover", (event) => {
  const column = boardColumn(event);
  if (!column || !draggedCard) return;
  event.preventDefault();
  event.dataTransfer.dropEffect = "move";
  column.classList.add("drop-target");
});

document.addEventListener("dragleave", (event) => {
  const column = boardColumn(event);
  if (column && !column.contains(event.relatedTarget)) column.classList.remove("drop-target");
});

document.addEventListener("drop", (event) => {
  const column = boardColumn(event);
  const card = draggedCard;
  if (!column || !card) return;
  event.preventDefault();
  column.classList.remove("drop-target");
  const form = card.querySelector("form.move");
  const field = form?.querySelector("input[data-drop-status]");
  if (!form || !field || card.closest("section[data-status]") === column) return;
  field.value = column.dataset.status;
  field.disabled = false;
  form.requestSubmit();
  card.setAttribute("aria-busy", "true");
});
