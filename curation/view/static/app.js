/* curation view: an offline browser over one output folder's site (see curation/view/site.py).
 *
 * Works from file:// : every data file is a script, data/<name>.js, that calls
 * CURATION.add(name, value); load(name) adds its <script> tag once and returns a Promise.
 * Text from the data always enters the DOM as text nodes (el() below), never as HTML.
 */
(function () {
  "use strict";

  const PAGE_SIZE = 10; // samples or rejects per page
  const COMPARE_PAGE_SIZE = 50;
  const PARALLEL_LOADS = 6; // chunk scripts requested at once during a search

  // ---------------------------------------------------------------- data loading

  const slots = new Map(); // name -> {promise, resolve, reject, script}

  function slot(name) {
    let s = slots.get(name);
    if (!s) {
      s = {};
      s.promise = new Promise(function (resolve, reject) {
        s.resolve = resolve;
        s.reject = reject;
      });
      slots.set(name, s);
    }
    return s;
  }

  window.CURATION = {
    add: function (name, value) {
      slot(String(name)).resolve(value);
    },
  };

  function load(name) {
    const s = slot(name);
    if (!s.script) {
      const script = document.createElement("script");
      script.src = "data/" + name + ".js";
      script.async = true;
      script.onerror = function () {
        s.reject(new Error("could not load data/" + name + ".js"));
      };
      s.script = script;
      document.head.appendChild(script);
    }
    return s.promise;
  }

  function chunkName(kind, index) {
    return kind + "-" + String(index).padStart(5, "0");
  }

  // Loads every chunk of `kind` (a few at a time), reporting (loaded, total) as they arrive.
  async function loadAllChunks(kind, info, onProgress) {
    const n = info.chunks || 0;
    const chunks = new Array(n);
    let next = 0;
    let done = 0;
    onProgress(0, n);
    async function worker() {
      while (next < n) {
        const i = next++;
        chunks[i] = await load(chunkName(kind, i));
        done += 1;
        onProgress(done, n);
      }
    }
    const workers = [];
    for (let w = 0; w < Math.min(PARALLEL_LOADS, n); w++) workers.push(worker());
    await Promise.all(workers);
    return chunks;
  }

  // Items [start, end) of `kind` in data order, loading only the chunks they live in.
  async function itemRange(kind, info, start, end) {
    const size = info.chunk || 100;
    const first = Math.floor(start / size);
    const last = Math.floor((end - 1) / size);
    const names = [];
    for (let c = first; c <= last && c < info.chunks; c++) names.push(chunkName(kind, c));
    const chunks = await Promise.all(names.map(load));
    const items = [];
    chunks.forEach(function (chunk, k) {
      const base = (first + k) * size;
      chunk.forEach(function (item, j) {
        const index = base + j;
        if (index >= start && index < end) items.push(item);
      });
    });
    return items;
  }

  // The items of `kind` passing `test`, over all chunks; cached per (kind, key) so that paging
  // through a search's results costs nothing. Concurrent callers share one scan.
  const filterCache = new Map();

  function filteredItems(kind, info, key, test, onProgress) {
    const id = kind + "\n" + key;
    let entry = filterCache.get(id);
    if (!entry) {
      const listeners = new Set();
      entry = { listeners: listeners, progress: [0, info.chunks || 0] };
      const current = entry;
      entry.promise = loadAllChunks(kind, info, function (k, n) {
        current.progress = [k, n];
        listeners.forEach(function (fn) {
          fn(k, n);
        });
      }).then(function (chunks) {
        const out = [];
        chunks.forEach(function (chunk) {
          chunk.forEach(function (item) {
            if (test(item)) out.push(item);
          });
        });
        return out;
      });
      entry.promise.catch(function () {
        filterCache.delete(id);
      });
      filterCache.set(id, entry);
    }
    entry.listeners.add(onProgress);
    onProgress(entry.progress[0], entry.progress[1]);
    const done = entry;
    return entry.promise.finally(function () {
      done.listeners.delete(onProgress);
    });
  }

  // ---------------------------------------------------------------- DOM helpers

  // el("p", {class: "x"}, "text", child, ...): strings become text nodes, never markup.
  function el(tag, attrs) {
    const node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (name) {
        const value = attrs[name];
        if (value === null || value === undefined || value === false) return;
        if (name === "hidden") node.hidden = Boolean(value);
        else node.setAttribute(name, value === true ? "" : String(value));
      });
    }
    for (let i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }

  function append(node, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) child.forEach(function (c) { append(node, c); });
    else if (child instanceof Node) node.appendChild(child);
    else node.appendChild(document.createTextNode(String(child)));
  }

  function text(value) {
    return value === null || value === undefined ? "" : String(value);
  }

  function number(value) {
    if (value === null || value === undefined || value === "") return "";
    const n = Number(value);
    if (!isFinite(n)) return String(value);
    if (Number.isInteger(n)) return n.toLocaleString("en-US");
    return n.toLocaleString("en-US", { maximumFractionDigits: 3 });
  }

  function plural(n, word) {
    return number(n) + " " + word + (n === 1 ? "" : "s");
  }

  function pageList(pages) {
    return (pages || []).map(function (p) { return String(p + 1); }).join(", ");
  }

  // ---------------------------------------------------------------- routing

  const ORDER = ["page", "q", "doc", "prompt", "type", "rating", "filter"];

  function parseRoute() {
    let raw = location.hash.replace(/^#\/?/, "");
    if (!raw) raw = "overview";
    const cut = raw.indexOf("?");
    const path = cut < 0 ? raw : raw.slice(0, cut);
    const params = new URLSearchParams(cut < 0 ? "" : raw.slice(cut + 1));
    const slash = path.indexOf("/");
    let arg = "";
    if (slash >= 0) {
      try {
        arg = decodeURIComponent(path.slice(slash + 1));
      } catch (e) {
        arg = path.slice(slash + 1);
      }
    }
    return { raw: raw, name: slash < 0 ? path : path.slice(0, slash), arg: arg, params: params };
  }

  function link(name, values) {
    const params = new URLSearchParams();
    ORDER.forEach(function (key) {
      const value = values ? values[key] : undefined;
      if (value === undefined || value === null || value === "") return;
      if (key === "page" && Number(value) <= 1) return;
      params.set(key, String(value));
    });
    const query = params.toString();
    return "#/" + name + (query ? "?" + query : "");
  }

  function go(hash) {
    if (location.hash !== hash) location.hash = hash;
  }

  function sampleLink(id) {
    return "#/sample/" + encodeURIComponent(id).replace(/%3A/gi, ":"); // unit ids: doc:pages
  }

  // ---------------------------------------------------------------- rendering driver

  const view = document.getElementById("view");
  let renderToken = 0;

  function Stale() {}

  function checkLive(token) {
    if (token !== renderToken) throw new Stale();
  }

  function isLive(token) {
    return token === renderToken;
  }

  // Replaces the page unless the current one is the same list page (kept so that the search box
  // keeps its focus and caret while the results under it change).
  function frame(name, build) {
    if (view.dataset.frame === name && view.firstChild) return view._frame;
    view.replaceChildren();
    delete view.dataset.frame;
    if (!build) return null;
    const parts = build();
    view.dataset.frame = name;
    view._frame = parts;
    return parts;
  }

  function setActiveNav(name) {
    const section = name === "sample" ? "samples" : name;
    document.querySelectorAll("#nav a").forEach(function (a) {
      a.classList.toggle("active", a.id === "nav-" + section);
    });
  }

  async function render() {
    const token = ++renderToken;
    const route = parseRoute();
    view.classList.add("loading");
    view.removeAttribute("data-ready");
    setActiveNav(route.name);
    try {
      const overview = await load("overview");
      checkLive(token);
      const page = PAGES[route.name] || notFoundPage;
      await page(route, overview, token);
      checkLive(token);
    } catch (err) {
      if (err instanceof Stale) return;
      frame(null);
      view.appendChild(
        el("div", { class: "failure" },
          el("h1", null, "Could not show this page"),
          el("p", null, text(err && err.message ? err.message : err)),
          el("p", { class: "muted" },
            "The site's data files are written by `curation view OUT --static` (or served by `curation view OUT`)."))
      );
    }
    if (!isLive(token)) return;
    view.classList.remove("loading");
    view.setAttribute("data-ready", route.raw);
  }

  // ---------------------------------------------------------------- overview

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

  // ---------------------------------------------------------------- list pages (shared)

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

  // ---------------------------------------------------------------- samples

  function sampleFilters(params) {
    return {
      q: params.get("q") || "",
      doc: params.get("doc") || "",
      prompt: params.get("prompt") || "",
      type: params.get("type") || "",
      rating: params.get("rating") || "",
    };
  }

  function pairMatches(f) {
    const q = f.q.toLowerCase();
    const min = f.rating === "" ? null : Number(f.rating);
    return function (pair) {
      if (q && !contains(pair.question, q) && !contains(pair.answer, q)) return false;
      if (f.prompt && pair.prompt_id !== f.prompt) return false;
      if (f.type && pair.question_type !== f.type) return false;
      if (min !== null && !isNaN(min)) {
        if (pair.rating_min === null || pair.rating_min === undefined || pair.rating_min < min) return false;
      }
      return true;
    };
  }

  function samplesControls(overview) {
    const facets = overview.facets || {};
    const search = el("input", { id: "search", type: "search", placeholder: "search questions and answers", autocomplete: "off" });
    const doc = selectControl("filter-doc", "document", facets.documents);
    const prompt = selectControl("filter-prompt", "prompt", facets.prompts);
    const type = selectControl("filter-type", "question type", facets.question_types);
    const rating = el("input", { id: "filter-rating", type: "number", min: "0", max: "10", step: "0.5", placeholder: "any" });
    const status = el("p", { class: "status-line", id: "list-status" }, "");
    const list = el("div", { class: "samples" });
    const pagerTop = pagerBar();
    view.appendChild(el("section", { class: "list-page" },
      el("div", { class: "controls" },
        el("label", { class: "control grow" }, "search", search),
        doc, prompt, type,
        el("label", { class: "control" }, "min rating", rating)),
      el("div", { class: "list-head" }, status, pagerTop.bar),
      list));
    const parts = {
      search: search, doc: doc.querySelector("select"), prompt: prompt.querySelector("select"),
      type: type.querySelector("select"), rating: rating, status: status, list: list,
      pageInfo: pagerTop.pageInfo, prev: pagerTop.prev, next: pagerTop.next,
    };
    function apply() {
      go(link("samples", {
        q: parts.search.value.trim(), doc: parts.doc.value, prompt: parts.prompt.value,
        type: parts.type.value, rating: parts.rating.value,
      }));
    }
    search.addEventListener("input", debounce(apply, 250));
    search.addEventListener("keydown", function (e) { if (e.key === "Enter") apply(); });
    [parts.doc, parts.prompt, parts.type].forEach(function (s) { s.addEventListener("change", apply); });
    rating.addEventListener("input", debounce(apply, 250));
    rating.addEventListener("change", apply);
    return parts;
  }

  async function samplesPage(route, overview, token) {
    const parts = frame("samples", function () { return samplesControls(overview); });
    const f = sampleFilters(route.params);
    setValue(parts.search, f.q);
    setValue(parts.doc, f.doc);
    setValue(parts.prompt, f.prompt);
    setValue(parts.type, f.type);
    setValue(parts.rating, f.rating);
    const info = overview.samples || { total: 0, chunk: 100, chunks: 0 };
    const active = Boolean(f.q || f.doc || f.prompt || f.type || f.rating);
    let pageNo = Math.max(1, parseInt(route.params.get("page"), 10) || 1);
    let items;
    let count;
    if (!active) {
      ({ count, pageNo, items } = await unfilteredPage("samples", info, pageNo, token, parts));
    } else {
      const test = pairMatches(f);
      const key = JSON.stringify(f);
      ({ count, pageNo, items } = await filteredPage("samples", info, key, function (sample) {
        if (f.doc && sample.doc_id !== f.doc) return false;
        return (sample.pairs || []).some(test);
      }, pageNo, token, parts));
    }
    const match = active ? pairMatches(f) : null;
    parts.list.replaceChildren.apply(parts.list, items.length ? items.map(function (s) { return sampleCard(s, match); })
      : [el("p", { class: "empty" }, active ? "No sample matches." : "No samples.")]);
    const pages = Math.max(1, Math.ceil(count / PAGE_SIZE));
    pager(parts, pageNo, pages, function (n) {
      go(link("samples", Object.assign({}, f, { page: n })));
    });
  }

  // Starts loading the chunk holding item `index` so that the next page is already there.
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

  function prefetch(kind, info, index) {
    const size = info.chunk || 100;
    const c = Math.floor(index / size);
    if (index < info.total && c < info.chunks) load(chunkName(kind, c)).catch(function () {});
  }

  function evidenceOf(sample) {
    const pages = new Set();
    (sample.pairs || []).forEach(function (pair) {
      (pair.evidence_pages || []).forEach(function (p) { pages.add(Number(p)); });
    });
    return pages;
  }

  function pageFigure(page, image, meta, evidence) {
    const label = "p. " + (page + 1);
    const caption = el("figcaption", null,
      el("span", { class: "page-label" + (evidence.has(page + 1) ? " evidence" : "") }, label));
    if (meta) {
      append(caption, el("span", { class: "text-source" }, text(meta.text_source)));
      if (meta.ocr_score !== null && meta.ocr_score !== undefined) {
        append(caption, el("span", { class: "ocr-score" }, "ocr " + number(meta.ocr_score)));
      }
      if (meta.duplicate_of) {
        append(caption, el("span", { class: "duplicate" }, "duplicate of " + text(meta.duplicate_of)));
      }
    }
    const small = image ? image.thumb || image.full : null;
    const picture = small
      ? el("img", {
          class: "thumb", src: text(small), alt: "page " + (page + 1), loading: "lazy",
          "data-full": text(image.full || small), tabindex: "0",
        })
      : el("div", { class: "no-image" }, "no image");
    return el("figure", { class: "page", "data-page": page }, picture, caption);
  }

  function ratingsView(pair) {
    const ratings = pair.ratings || [];
    if (!ratings.length) return null;
    return el("p", { class: "ratings" }, "ratings: ",
      ratings.map(function (r, i) {
        return [i ? " · " : "", el("span", { class: "rating" }, text(r.axis) + " " + number(r.score))];
      }),
      pair.rating_min !== null && pair.rating_min !== undefined ? " (min " + number(pair.rating_min) + ")" : "");
  }

  function scoresView(pair) {
    const scores = pair.scores || [];
    if (!scores.length) return null;
    return el("table", { class: "scores" },
      el("thead", null, el("tr", null, el("th", null, "filter"), el("th", { class: "num" }, "score"), el("th", null, "note"))),
      el("tbody", null, scores.map(function (s) {
        return el("tr", null,
          el("td", null, text(s.filter)),
          el("td", { class: "num" }, number(s.score)),
          el("td", { class: "reason" }, text(s.reason)));
      })));
  }

  function pairView(pair, match) {
    const evidence = (pair.evidence_pages || []).map(Number);
    const item = el("li", { class: "pair" + (match && match(pair) ? " match" : ""), "data-qa-id": text(pair.qa_id) },
      el("div", { class: "question" }, text(pair.question)),
      el("div", { class: "answer" }, text(pair.answer)),
      el("p", { class: "pair-meta" },
        pair.prompt_id ? el("span", { class: "chip prompt" }, text(pair.prompt_id)) : null,
        pair.question_type ? el("span", { class: "chip qtype" }, text(pair.question_type)) : null,
        evidence.length ? el("span", { class: "chip evidence-pages" }, "evidence p. " + evidence.join(", ")) : null),
      pair.rationale ? el("p", { class: "rationale" }, el("span", { class: "muted" }, "rationale: "), text(pair.rationale)) : null,
      ratingsView(pair),
      scoresView(pair));
    item._evidence = evidence;
    return item;
  }

  function sampleCard(sample, match) {
    const evidence = evidenceOf(sample);
    const images = new Map((sample.images || []).map(function (img) { return [img.page, img]; }));
    const metas = new Map((sample.page_meta || []).map(function (m) { return [m.page, m]; }));
    const pages = (sample.pages && sample.pages.length) ? sample.pages : Array.from(images.keys());
    const thumbs = el("div", { class: "thumbs" }, pages.map(function (p) {
      return pageFigure(p, images.get(p), metas.get(p), evidence);
    }));
    const pairs = el("ol", { class: "pairs" }, (sample.pairs || []).map(function (pair) { return pairView(pair, match); }));
    // Hovering a pair marks the pages it cites.
    pairs.addEventListener("mouseover", function (e) {
      const item = e.target.closest(".pair");
      const cited = new Set(item ? item._evidence : []);
      thumbs.querySelectorAll("figure.page").forEach(function (fig) {
        fig.classList.toggle("cited", cited.has(Number(fig.dataset.page) + 1));
      });
    });
    pairs.addEventListener("mouseleave", function () {
      thumbs.querySelectorAll("figure.cited").forEach(function (fig) { fig.classList.remove("cited"); });
    });
    return el("article", { class: "sample card", "data-id": text(sample.id) },
      el("header", { class: "card-head" },
        el("a", { class: "sample-id", href: sampleLink(sample.id) }, text(sample.id)),
        el("span", { class: "doc" }, text(sample.doc_id)),
        sample.source ? el("span", { class: "source" }, text(sample.source)) : null,
        el("span", { class: "muted" }, "pages " + pageList(pages))),
      thumbs,
      pairs);
  }

  async function samplePage(route, overview, token) {
    frame(null);
    const info = overview.samples || { chunks: 0 };
    const status = el("p", { class: "status-line" }, "");
    view.appendChild(el("section", { class: "detail" },
      el("p", null, el("a", { href: "#/samples" }, "← all samples")), status));
    let found = null;
    const n = info.chunks || 0;
    for (let start = 0; start < n && !found; start += PARALLEL_LOADS) {
      const names = [];
      for (let c = start; c < Math.min(n, start + PARALLEL_LOADS); c++) names.push(chunkName("samples", c));
      const chunks = await Promise.all(names.map(load));
      checkLive(token);
      status.textContent = "searching " + Math.min(n, start + PARALLEL_LOADS) + "/" + n + " chunks";
      for (const chunk of chunks) {
        found = chunk.find(function (s) { return s.id === route.arg; }) || null;
        if (found) break;
      }
    }
    if (found) {
      status.remove();
      view.firstChild.appendChild(sampleCard(found, null));
    } else {
      status.textContent = "No sample " + route.arg + " in this site" +
        (truncationNote(overview) ? " (it shows only part of the dataset)." : ".");
    }
  }

  // ---------------------------------------------------------------- rejects

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

  // ---------------------------------------------------------------- errors

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

  // ---------------------------------------------------------------- compare

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

  async function notFoundPage(route) {
    frame(null);
    view.appendChild(el("section", null, el("h1", null, "No such page"),
      el("p", null, "Nothing at #/" + route.raw + ". "), el("a", { href: "#/overview" }, "Back to the overview")));
  }

  const PAGES = {
    overview: overviewPage,
    samples: samplesPage,
    sample: samplePage,
    rejects: rejectsPage,
    errors: errorsPage,
    compare: comparePage,
  };

  // ---------------------------------------------------------------- zoom overlay

  const zoom = document.getElementById("zoom");
  const zoomImg = document.getElementById("zoom-img");
  const zoomCaption = document.getElementById("zoom-caption");

  function openZoom(thumb) {
    zoomImg.src = thumb.getAttribute("data-full") || thumb.getAttribute("src");
    zoomImg.alt = thumb.alt;
    const card = thumb.closest(".sample");
    zoomCaption.textContent = (card ? card.getAttribute("data-id") + " · " : "") + thumb.alt;
    zoom.hidden = false;
    document.body.classList.add("zoomed");
  }

  function closeZoom() {
    if (zoom.hidden) return;
    zoom.hidden = true;
    zoomImg.removeAttribute("src");
    document.body.classList.remove("zoomed");
  }

  view.addEventListener("click", function (e) {
    const thumb = e.target.closest("img.thumb");
    if (thumb) openZoom(thumb);
  });
  view.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && e.target.matches("img.thumb")) openZoom(e.target);
  });
  zoom.addEventListener("click", closeZoom);
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape") closeZoom();
  });

  // ---------------------------------------------------------------- start

  async function start() {
    window.addEventListener("hashchange", function () {
      closeZoom();
      render();
    });
    render();
    try {
      const overview = await load("overview");
      const name = text(overview.name) || "dataset";
      document.title = name + " · curation view";
      document.getElementById("site-name").textContent = name;
      document.getElementById("nav-compare").hidden = !overview.compare;
      const banner = document.getElementById("banner");
      if (overview.status === "running") {
        banner.hidden = false;
        banner.className = "running";
        banner.textContent = "This run is still running: the site is a snapshot of " + text(overview.out_dir) +
          " taken when it was built. Rebuild it to see newer shards.";
      }
    } catch (e) {
      // render() shows the failure.
    }
  }

  start();
})();
