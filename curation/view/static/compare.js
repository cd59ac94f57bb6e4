/* curation view, compare.js: the compare page (#/compare): the pairs whose fate differs between
 * this run and another.
 */
(function (CURATION) {
  "use strict";

  const { load, el, text, number, plural, link, go, view, checkLive, frame, PAGES } = CURATION;
  const { pager, pagerBar } = CURATION;

  const COMPARE_PAGE_SIZE = 50;

  function fate(value, reason) {
    const kept = value === "kept";
    return el("td", { class: "fate " + (kept ? "kept" : value === "absent" ? "absent" : "rejected") },
      el("span", { class: "chip" }, text(value)),
      reason ? el("div", { class: "reason" }, text(reason)) : null);
  }

  function compareCounts(summary) {
    const labels = [
      ["kept_here_rejected_there", "kept here, rejected there"],
      ["rejected_here_kept_there", "rejected here, kept there"],
      ["only_here", "only here"],
      ["only_there", "only there"],
    ].filter(function (l) { return summary[l[0]] !== undefined; });
    if (!labels.length) return null;
    return el("div", { class: "totals" }, labels.map(function (l) {
      return el("span", { class: "total" }, l[1] + ": ", el("strong", null, number(summary[l[0]])));
    }));
  }

  async function comparePage(route, overview, token) {
    frame(null);
    if (!overview.compare) {
      view.appendChild(el("section", null, el("h1", null, "Compare"),
        el("p", { class: "muted" }, "No comparison in this site: build it with `curation view OUT --compare OTHER`.")));
      return;
    }
    const data = await load("compare");
    checkLive(token);
    const rows = data.rows || [];
    const pages = Math.max(1, Math.ceil(rows.length / COMPARE_PAGE_SIZE));
    const pageNo = Math.min(pages, Math.max(1, parseInt(route.params.get("page"), 10) || 1));
    const shown = rows.slice((pageNo - 1) * COMPARE_PAGE_SIZE, pageNo * COMPARE_PAGE_SIZE);
    const bar = pagerBar();
    view.appendChild(el("section", { class: "compare-page" },
      el("h1", null, "Compare"),
      el("p", { class: "muted" }, "Pairs whose fate differs between ", el("strong", null, text(overview.out_dir)),
        " (here) and ", el("strong", null, text(data.other || overview.compare.other)), " (there): ",
        plural(data.truncated_from || rows.length, "pair"), "."),
      compareCounts(overview.compare),
      data.truncated_from > rows.length
        ? el("p", { class: "note" }, "The site lists the first " + number(rows.length) + " of them.") : null,
      el("div", { class: "list-head" }, el("span", null, ""), bar.bar),
      rows.length ? el("table", { class: "compare" },
        el("thead", null, el("tr", null,
          ["question", "answer", "here", "there"].map(function (h) { return el("th", null, h); }))),
        el("tbody", null, shown.map(function (r) {
          return el("tr", { class: "compare-row", "data-qa-id": text(r.qa_id) },
            el("td", { class: "question" }, text(r.question)),
            el("td", { class: "answer" }, text(r.answer)),
            fate(r.here, r.here_reason),
            fate(r.there, r.there_reason));
        }))) : el("p", { class: "empty" }, "Both runs kept and rejected the same pairs.")));
    pager(bar, pageNo, pages, function (n) { go(link("compare", { page: n })); });
  }

  PAGES.compare = comparePage;
})(window.CURATION);
