// Building DOM nodes for every EdgeTeach page (the device dashboard and the trainer's Studio both serve this
// file at /static/core/dom.js): el("button", {class: "plain", onclick: f}, "text", child, ...).
// Attributes named on* become event listeners; false, null and undefined leave an attribute out, true sets it empty.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child);
  return node;
}
