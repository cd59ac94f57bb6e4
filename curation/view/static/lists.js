/* curation view, lists.js: what the list pages (samples, rejects) share: the pager, the controls,
 * and one page of a list, whole or searched.
 */
(function (CURATION) {
  "use strict";

  const { itemRange, filteredItems, prefetch, el, text, number, plural, checkLive, isLive } = CURATION;

  const PAGE_SIZE = 10; // samples or rejects per page

  function pager(parts, pageNo, pages, onGo) {
    parts.pageInfo.textContent = "page " + pageNo + " of " + pages;
    parts.prev.disabled = pageNo <= 1;
    parts.next.disabled = pageNo >= pages;
    parts.prev.onclick = function () { onGo(pageNo - 1); };
    parts.next.onclick = function () { onGo(pageNo + 1); };
  }

  function pagerBar() {
    const prev = el("button", { id: "prev", type: "button" }, "← prev");
    const next = el("button", { id: "next", type: "button" }, "next →");
    const pageInfo = el("span", { id: "page-info" }, "");
    return { bar: el("div", { class: "pager" }, prev, pageInfo, next), prev: prev, next: next, pageInfo: pageInfo };
  }

  function setValue(control, value) {
    if (document.activeElement !== control && control.value !== value) control.value = value;
  }

  function selectControl(id, label, options) {
    return el("label", { class: "control" }, label,
      el("select", { id: id },
        el("option", { value: "" }, "all"),
        (options || []).map(function (o) { return el("option", { value: text(o) }, text(o)); })));
  }

  function debounce(fn, ms) {
    let timer = null;
    return function () {
      clearTimeout(timer);
      timer = setTimeout(fn, ms);
    };
  }

  function contains(haystack, needle) {
    return haystack !== null && haystack !== undefined && String(haystack).toLowerCase().indexOf(needle) >= 0;
  }

  // One page of the whole list (no search or filter): only its chunks are loaded, the next
  // page's chunk is fetched ahead.
  async function unfilteredPage(kind, info, pageNo, token, parts) {
    const count = info.total;
    const page = Math.min(pageNo, Math.max(1, Math.ceil(count / PAGE_SIZE)));
    const start = (page - 1) * PAGE_SIZE;
    const items = await itemRange(kind, info, start, Math.min(count, start + PAGE_SIZE));
    checkLive(token);
    parts.status.textContent = plural(count, kind === "samples" ? "sample" : "reject");
    prefetch(kind, info, start + PAGE_SIZE);
    return { count: count, pageNo: page, items: items };
  }

  // One page of the items that pass `test` (a search or a filter): every chunk is loaded, the
  // progress shown as it goes; the matches are kept by `key`, so paging through them is instant.
  async function filteredPage(kind, info, key, test, pageNo, token, parts) {
    const matches = await filteredItems(kind, info, key, test, function (k, n) {
      if (isLive(token) && k < n) parts.status.textContent = "searching " + k + "/" + n + " chunks";
    });
    checkLive(token);
    const count = matches.length;
    const page = Math.min(pageNo, Math.max(1, Math.ceil(count / PAGE_SIZE)));
    const items = matches.slice((page - 1) * PAGE_SIZE, page * PAGE_SIZE);
    const noun = kind === "samples" ? "sample" : "reject";
    parts.status.textContent = number(count) + " of " + plural(info.total, noun) + " match";
    return { count: count, pageNo: page, items: items };
  }

  Object.assign(CURATION, {
    PAGE_SIZE, pager, pagerBar, setValue, selectControl, debounce, contains, unfilteredPage, filteredPage,
  });
})(window.CURATION);
