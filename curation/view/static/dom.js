/* curation view, dom.js: element helpers and number formatting.
 *
 * Text from the data always enters the DOM as text nodes (el() below), never as HTML.
 */
(function (CURATION) {
  "use strict";

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

  Object.assign(CURATION, { el, append, text, number, plural, pageList });
})(window.CURATION);
