// A clip as a WAV file: 16-bit PCM, mono, the RIFF layout every sound tool reads (plain JS, no library).
// The server checks and decodes it again before keeping it (trainer/studio/uploads.py).

const HEADER_BYTES = 44;

export function encodeWav(samples, rate) {
  const buffer = new ArrayBuffer(HEADER_BYTES + 2 * samples.length);
  const view = new DataView(buffer);
  const text = (offset, word) => { for (let i = 0; i < word.length; i += 1) view.setUint8(offset + i, word.charCodeAt(i)); };
  text(0, "RIFF"); view.setUint32(4, HEADER_BYTES - 8 + 2 * samples.length, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); // the format chunk's size
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, rate, true); view.setUint32(28, 2 * rate, true); // samples and bytes per second
  view.setUint16(32, 2, true); view.setUint16(34, 16, true); // bytes per frame, bits per sample
  text(36, "data"); view.setUint32(40, 2 * samples.length, true);
  for (let i = 0; i < samples.length; i += 1) {
    const s = Math.max(-1, Math.min(1, samples[i])); // a clipped sample, not a wrapped-around one
    view.setInt16(HEADER_BYTES + 2 * i, s < 0 ? s * 0x8000 : s * 0x7fff, true);
  }
  return new Blob([buffer], { type: "audio/wav" });
}
