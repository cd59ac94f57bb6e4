/* curation view, samples.js: the samples list (#/samples), one sample (#/sample/ID), and the zoom
 * overlay that shows a page's full image.
 */
(function (CURATION) {
  "use strict";

  const { PARALLEL_LOADS, load, chunkName, el, append, text, number, pageList } = CURATION;
  const { link, go, sampleLink, view, checkLive, frame, PAGES, truncationNote } = CURATION;
  const { PAGE_SIZE, pager, pagerBar, setValue, selectControl, debounce, contains } = CURATION;
  const { unfilteredPage, filteredPage } = CURATION;

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
  window.addEventListener("hashchange", closeZoom);

  PAGES.samples = samplesPage;
  PAGES.sample = samplePage;
})(window.CURATION);
