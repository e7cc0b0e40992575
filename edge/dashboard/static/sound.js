// A microphone's tile: the level meter, the waveform of the window the model heard, and a spectrogram that
// scrolls one column per classified window.
const FLOOR_DB = -80;

export function level(meter, db) {
  const share = Math.max(0, Math.min(1, (db - FLOOR_DB) / -FLOOR_DB));
  meter.style.width = `${(100 * share).toFixed(1)}%`;
  meter.parentElement.title = `${db.toFixed(1)} dBFS`;
}

export function waveform(canvas, peaks) {
  const g = canvas.getContext("2d");
  const { width, height } = canvas;
  g.clearRect(0, 0, width, height);
  g.fillStyle = "#1a73e8";
  const w = width / Math.max(1, peaks.length);
  peaks.forEach((p, i) => { const h = Math.max(1, p * height); g.fillRect(i * w, (height - h) / 2, Math.max(1, w - 1), h); });
}

function colour(db) {
  const t = Math.max(0, Math.min(1, (db - FLOOR_DB) / -FLOOR_DB));
  return `hsl(${240 - 240 * t}, 85%, ${15 + 45 * t}%)`;
}

export function spectrogramColumn(canvas, bands) {
  const g = canvas.getContext("2d");
  const { width, height } = canvas;
  const step = 3;
  g.drawImage(canvas, -step, 0);  // scroll left by one column
  const h = height / Math.max(1, bands.length);
  bands.forEach((db, i) => { g.fillStyle = colour(db); g.fillRect(width - step, height - (i + 1) * h, step, Math.ceil(h)); });
}
