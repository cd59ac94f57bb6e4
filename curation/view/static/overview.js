/* curation view, overview.js: the overview page (#/overview): totals, funnel, plots and counts.
 */
(function (CURATION) {
  "use strict";

  const { el, text, number, plural, link, view, frame, PAGES } = CURATION;

  const COUNT_TITLES = {
    inputs_by_status: ["Inputs by status", "status"],
    pairs_by_prompt: ["Pairs by prompt", "prompt"],
    pairs_by_question_type: ["Pairs by question type", "question type"],
    rejects_by_filter: ["Rejects by filter", "filter"],
    errors_by_code: ["Errors by code", "code"],
    units_by_layout: ["Units by layout", "layout"],
    ratings_by_axis: ["Mean rating by judge axis", "axis"],
  };

  // Where a count's label leads: the list it counts, filtered on it.
  function countLink(key, label) {
    if (key === "pairs_by_prompt") return link("samples", { prompt: label });
    if (key === "pairs_by_question_type") return link("samples", { type: label });
    if (key === "rejects_by_filter") return link("rejects", { filter: label });
    if (key === "errors_by_code") return link("errors");
    return null;
  }

  function countTable(key, rows) {
    const titles = COUNT_TITLES[key] || [key.replace(/_/g, " "), "label"];
    const valueHead = key === "ratings_by_axis" ? "mean" : "count";
    return el("table", { class: "counts", "data-key": key },
      el("caption", null, titles[0]),
      el("thead", null, el("tr", null, el("th", null, titles[1]), el("th", { class: "num" }, valueHead))),
      el("tbody", null, rows.map(function (row) {
        const href = countLink(key, row[0]);
        const label = text(row[0]) || "(none)";
        return el("tr", null,
          el("td", null, href ? el("a", { href: href }, label) : label),
          el("td", { class: "num" }, number(row[1])));
      })));
  }

  function funnelTable(funnel) {
    const top = Math.max.apply(null, [1].concat(funnel.map(function (row) { return Number(row[1]) || 0; })));
    return el("table", { id: "funnel" },
      el("thead", null, el("tr", null, el("th", null, "stage"), el("th", { class: "num" }, "count"), el("th", { class: "bar-cell" }, ""))),
      el("tbody", null, funnel.map(function (row) {
        const bar = el("span", { class: "bar" });
        bar.style.width = Math.max(0, Math.min(100, (100 * (Number(row[1]) || 0)) / top)) + "%";
        return el("tr", null,
          el("td", null, text(row[0])),
          el("td", { class: "num" }, number(row[1])),
          el("td", { class: "bar-cell" }, bar));
      })));
  }

  // The builder's --max-samples keeps the first samples (and as many rejects); it records how
  // many there were in all as `truncated_from`.
  function truncationNote(overview) {
    const parts = [];
    [["samples", "sample"], ["rejects", "reject"]].forEach(function (kind) {
      const info = overview[kind[0]] || {};
      if (info.truncated_from > info.total) {
        parts.push("the first " + number(info.total) + " of " + plural(info.truncated_from, kind[1]));
      }
    });
    if (!parts.length) return null;
    return el("p", { class: "note", id: "truncated" },
      "This site holds " + parts.join(" and ") + " (built with --max-samples); searches and pages cover " +
        "only those. The funnel and the counts cover the whole dataset.");
  }

  async function overviewPage(route, overview) {
    frame(null);
    const counts = overview.counts || {};
    const keys = Object.keys(COUNT_TITLES).filter(function (k) { return counts[k] && counts[k].length; })
      .concat(Object.keys(counts).filter(function (k) { return !COUNT_TITLES[k] && counts[k] && counts[k].length; }));
    const plots = overview.plots || [];
    const compare = overview.compare;
    view.appendChild(el("section", { class: "overview" },
      el("h1", null, text(overview.name) || "dataset"),
      el("p", { class: "muted" },
        text(overview.out_dir), " · ",
        el("span", { class: "status status-" + text(overview.status) }, text(overview.status))),
      el("div", { class: "totals" },
        el("a", { href: "#/samples" }, plural((overview.samples || {}).total || 0, "sample")),
        el("a", { href: "#/rejects" }, plural((overview.rejects || {}).total || 0, "reject")),
        el("a", { href: "#/errors" }, plural((overview.errors || {}).total || 0, "error")),
        compare ? el("a", { href: "#/compare" }, "compared with " + text(compare.other)) : null),
      el("h2", null, "Funnel"),
      funnelTable(overview.funnel || []),
      truncationNote(overview),
      compare ? el("p", { class: "note" },
        plural(compare.kept_here_rejected_there, "pair") + " kept here were rejected in " + text(compare.other) +
          "; " + number(compare.rejected_here_kept_there) + " rejected here were kept there.") : null,
      plots.length ? el("h2", null, "Plots") : null,
      plots.length ? el("div", { class: "plots" }, plots.map(function (plot) {
        return el("figure", { class: "plot" },
          el("img", { src: text(plot[1]), alt: text(plot[0]), loading: "lazy" }),
          el("figcaption", null, text(plot[0]).replace(/_/g, " ")));
      })) : null,
      keys.length ? el("h2", null, "Counts") : null,
      keys.length ? el("div", { class: "count-tables" }, keys.map(function (k) { return countTable(k, counts[k]); })) : null));
  }

  PAGES.overview = overviewPage;
  Object.assign(CURATION, { truncationNote });
})(window.CURATION);
