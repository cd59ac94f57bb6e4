/* curation view, rejects.js: the rejects list (#/rejects): a search and a chip per filter.
 */
(function (CURATION) {
  "use strict";

  const { el, text, number, pageList, link, go, sampleLink, view, frame, PAGES } = CURATION;
  const { PAGE_SIZE, pager, pagerBar, setValue, debounce, contains, unfilteredPage, filteredPage } = CURATION;

  function rejectsControls(overview) {
    const counts = (overview.counts || {}).rejects_by_filter || [];
    const search = el("input", { id: "search", type: "search", placeholder: "search questions, answers and replies", autocomplete: "off" });
    const chips = el("nav", { class: "chips", id: "reject-filters" });
    const status = el("p", { class: "status-line", id: "list-status" }, "");
    const list = el("div", { class: "rejects" });
    const pagerTop = pagerBar();
    view.appendChild(el("section", { class: "list-page" },
      el("div", { class: "controls" }, el("label", { class: "control grow" }, "search", search)),
      chips,
      el("div", { class: "list-head" }, status, pagerTop.bar),
      list));
    const parts = {
      search: search, chips: chips, counts: counts, status: status, list: list,
      pageInfo: pagerTop.pageInfo, prev: pagerTop.prev, next: pagerTop.next, filter: "",
    };
    function apply() {
      go(link("rejects", { q: parts.search.value.trim(), filter: parts.filter }));
    }
    search.addEventListener("input", debounce(apply, 250));
    search.addEventListener("keydown", function (e) { if (e.key === "Enter") apply(); });
    return parts;
  }

  function rejectChips(parts, overview, f) {
    const total = (overview.rejects || {}).total || 0;
    const chip = function (name, label, n) {
      return el("a", {
        class: "chip filter-chip" + (f.filter === name ? " active" : ""), "data-filter": name,
        href: link("rejects", { q: f.q, filter: name }),
      }, label, " ", el("span", { class: "count" }, number(n)));
    };
    parts.chips.replaceChildren.apply(parts.chips, [chip("", "all", total)].concat(
      parts.counts.map(function (row) { return chip(text(row[0]), text(row[0]), row[1]); })));
  }

  function rejectCard(reject) {
    const pair = reject.question !== null && reject.question !== undefined;
    return el("article", { class: "reject card", "data-filter": text(reject.filter) },
      el("header", { class: "card-head" },
        el("span", { class: "chip filter-name" }, text(reject.filter)),
        reject.score !== null && reject.score !== undefined ? el("span", { class: "score" }, "score " + number(reject.score)) : null,
        el("span", { class: "doc" }, text(reject.doc_id)),
        reject.source ? el("span", { class: "source" }, text(reject.source)) : null,
        (reject.pages || []).length ? el("span", { class: "muted" }, "pages " + pageList(reject.pages)) : null),
      el("p", { class: "reason" }, text(reject.reason)),
      pair
        ? el("div", { class: "pair" },
            el("div", { class: "question" }, text(reject.question)),
            el("div", { class: "answer" }, text(reject.answer)),
            el("p", { class: "pair-meta" },
              reject.prompt_id ? el("span", { class: "chip prompt" }, text(reject.prompt_id)) : null,
              reject.question_type ? el("span", { class: "chip qtype" }, text(reject.question_type)) : null))
        : el("div", { class: "raw" },
            el("p", { class: "muted" }, "The reply as the model wrote it" + (reject.prompt_id ? " (" + text(reject.prompt_id) + ")" : "") + ":"),
            el("pre", { class: "raw-reply" }, text(reject.raw_reply))),
      el("p", { class: "card-foot" },
        reject.unit_id ? el("span", { class: "muted" }, "unit " + text(reject.unit_id)) : null,
        reject.sample ? el("a", { class: "unit-link", href: sampleLink(reject.sample) }, "kept pairs of this unit →") : null));
  }

  async function rejectsPage(route, overview, token) {
    const parts = frame("rejects", function () { return rejectsControls(overview); });
    const f = { q: route.params.get("q") || "", filter: route.params.get("filter") || "" };
    parts.filter = f.filter;
    setValue(parts.search, f.q);
    rejectChips(parts, overview, f);
    const info = overview.rejects || { total: 0, chunk: 100, chunks: 0 };
    let pageNo = Math.max(1, parseInt(route.params.get("page"), 10) || 1);
    let items;
    let count;
    if (!f.q && !f.filter) {
      ({ count, pageNo, items } = await unfilteredPage("rejects", info, pageNo, token, parts));
    } else {
      const q = f.q.toLowerCase();
      ({ count, pageNo, items } = await filteredPage("rejects", info, JSON.stringify(f), function (r) {
        if (f.filter && r.filter !== f.filter) return false;
        return !q || contains(r.question, q) || contains(r.answer, q) || (r.question === null && contains(r.raw_reply, q));
      }, pageNo, token, parts));
    }
    parts.list.replaceChildren.apply(parts.list, items.length ? items.map(rejectCard)
      : [el("p", { class: "empty" }, f.q || f.filter ? "No reject matches." : "No rejects.")]);
    pager(parts, pageNo, Math.max(1, Math.ceil(count / PAGE_SIZE)), function (n) {
      go(link("rejects", Object.assign({}, f, { page: n })));
    });
  }

  PAGES.rejects = rejectsPage;
})(window.CURATION);
