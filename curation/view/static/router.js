/* curation view, router.js: hash routing (#/name/arg?params) and the rendering driver.
 *
 * render() draws the page the hash names with the function that the page's script put in
 * PAGES; a render that a newer one overtook stops at its next checkLive().
 */
(function (CURATION) {
  "use strict";

  const { load, el, text } = CURATION;

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

  const PAGES = {}; // route name -> async function (route, overview, token), one per page script

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

  async function notFoundPage(route) {
    frame(null);
    view.appendChild(el("section", null, el("h1", null, "No such page"),
      el("p", null, "Nothing at #/" + route.raw + ". "), el("a", { href: "#/overview" }, "Back to the overview")));
  }

  Object.assign(CURATION, { link, go, sampleLink, view, checkLive, isLive, frame, render, PAGES });
})(window.CURATION);
