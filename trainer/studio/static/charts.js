// Accuracy and loss per epoch (training and validation) as two small SVG charts: the Train screen and Under the hood.

import { el, pct, SVG_NS } from "./ui.js";

export function curves(history) {
  const chart = (key, title, top) => {
    const W = 460, H = 220, L = 40, B = 30;
    const n = history.length;
    const x = (i) => L + (n > 1 ? (i / (n - 1)) * (W - L - 10) : 0);
    const y = (v) => H - B - (Math.min(v, top) / top) * (H - B - 10);
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`); svg.setAttribute("width", W); svg.setAttribute("height", H); svg.classList.add("chart");
    const ns = (tag, attrs, text) => { const node = document.createElementNS(svg.namespaceURI, tag);
      for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v); if (text) node.textContent = text; return node; };
    svg.append(ns("line", { x1: L, y1: H - B, x2: W - 5, y2: H - B, stroke: "#999" }), ns("line", { x1: L, y1: 10, x2: L, y2: H - B, stroke: "#999" }),
      ns("text", { x: L, y: H - 8, "font-size": 12 }, `epoch 1 … ${n}`), ns("text", { x: 4, y: 16, "font-size": 12 }, String(top)),
      ns("text", { x: W - 170, y: 20, "font-size": 12, fill: "#1a73e8" }, "training"), ns("text", { x: W - 100, y: 20, "font-size": 12, fill: "#e8711a" }, "validation"));
    for (const [field, colour] of [[`train_${key}`, "#1a73e8"], [`val_${key}`, "#e8711a"]]) {
      svg.append(ns("polyline", { fill: "none", stroke: colour, "stroke-width": 2,
        points: history.map((h, i) => `${x(i).toFixed(1)},${y(Number.isFinite(h[field]) ? h[field] : 0).toFixed(1)}`).join(" ") }));
    }
    return el("figure", {}, svg, el("figcaption", { class: "muted" }, title));
  };
  const last = history[history.length - 1];
  const maxLoss = Math.max(1, ...history.flatMap((h) => [h.train_loss, h.val_loss].filter(Number.isFinite)));
  return [el("div", { class: "row" }, chart("accuracy", "Accuracy per epoch", 1), chart("loss", "Loss per epoch", Math.ceil(maxLoss))),
    el("p", { class: "muted", id: "last-epoch" }, `epoch ${last.epoch}: training accuracy ${pct(last.train_accuracy)}, loss ${last.train_loss.toFixed(3)}; `
      + `validation accuracy ${pct(last.val_accuracy)}, loss ${Number.isFinite(last.val_loss) ? last.val_loss.toFixed(3) : "-"}`)];
}
