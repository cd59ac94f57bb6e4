/* curation view, errors.js: the errors page (#/errors): the inputs that could not be used.
 */
(function (CURATION) {
  "use strict";

  const { load, el, text, plural, view, checkLive, frame, PAGES } = CURATION;

  async function errorsPage(route, overview, token) {
    frame(null);
    const total = (overview.errors || {}).total || 0;
    const errors = total ? await load("errors") : [];
    checkLive(token);
    view.appendChild(el("section", { class: "errors-page" },
      el("h1", null, "Errors"),
      el("p", { class: "muted" }, errors.length
        ? plural(errors.length, "input") + " (or parts of inputs) could not be used."
        : "No errors: every input was read."),
      errors.length ? el("table", { class: "errors" },
        el("thead", null, el("tr", null,
          ["code", "stage", "document", "source", "message"].map(function (h) { return el("th", null, h); }))),
        el("tbody", null, errors.map(function (e) {
          return el("tr", { class: "error-row", "data-code": text(e.code) },
            el("td", null, el("span", { class: "chip code" }, text(e.code))),
            el("td", null, text(e.stage)),
            el("td", { class: "doc" }, text(e.doc_id)),
            el("td", { class: "source" }, text(e.source)),
            el("td", { class: "message" }, text(e.message)));
        }))) : null));
  }

  PAGES.errors = errorsPage;
})(window.CURATION);
