/* curation view, start.js: starts the app: draws the page the hash names, again on each change,
 * and names the dataset in the title (with a banner while its run is still running).
 */
(function (CURATION) {
  "use strict";

  const { load, text, render } = CURATION;

  async function start() {
    window.addEventListener("hashchange", function () {
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
})(window.CURATION);
