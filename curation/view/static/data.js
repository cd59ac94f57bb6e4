/* curation view, data.js: loading the site's data files.
 *
 * Works from file:// : every data file is a script, data/<name>.js, that calls
 * CURATION.add(name, value); load(name) adds its <script> tag once and returns a Promise.
 * window.CURATION is the app's one global: made here, in the first of the scripts that
 * index.html loads in order; each later script takes the names it uses from it and adds the
 * names it shares (a page script adds its page to PAGES).
 */
(function () {
  "use strict";

  const PARALLEL_LOADS = 6; // chunk scripts requested at once during a search

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

  // Starts loading the chunk holding item `index` so that the next page is already there.
  function prefetch(kind, info, index) {
    const size = info.chunk || 100;
    const c = Math.floor(index / size);
    if (index < info.total && c < info.chunks) load(chunkName(kind, c)).catch(function () {});
  }

  Object.assign(window.CURATION, { PARALLEL_LOADS, load, chunkName, itemRange, filteredItems, prefetch });
})();
