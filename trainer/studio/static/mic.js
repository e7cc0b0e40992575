// The microphone for sound projects: one open stream on the page, its samples (mono, at `mic.rate`) kept in a
// ring of the last few seconds for Preview (`latest`) and handed to recorders that wait for the next n samples
// (`record`, for the gather screen's clips). Echo cancelling, noise suppression and automatic gain are asked off:
// the model should hear what the Pi's microphone will hear, not a voice call's cleaned-up sound.

const PREFERRED_RATE = 16000; // the sound trainer's rate: smaller uploads; the server resamples any other
const RING_SECONDS = 4;

import { onLeave } from "./ui.js";

let current = null;

export class Mic {
  constructor(context, stream, node) {
    this.context = context;
    this.stream = stream;
    this.node = node;
    this.rate = context.sampleRate;
    this.ring = new Float32Array(RING_SECONDS * this.rate);
    this.written = 0; // samples received since the microphone opened
    this.recorders = [];
    node.port.onmessage = (event) => this.receive(event.data);
  }

  receive(block) {
    const ring = this.ring;
    for (let i = 0; i < block.length; i += 1) ring[(this.written + i) % ring.length] = block[i];
    this.written += block.length;
    for (const recorder of [...this.recorders]) recorder(block);
  }

  // The last n samples (n at most the ring), zeros before the microphone had sent them.
  latest(n) {
    const out = new Float32Array(n);
    const have = Math.min(n, this.written, this.ring.length);
    for (let i = 0; i < have; i += 1) out[n - have + i] = this.ring[(this.written - have + i) % this.ring.length];
    return out;
  }

  // The next n samples, as they arrive; onProgress(fraction) after each block; `signal` (an AbortSignal) stops early
  // and gives what was recorded so far.
  record(n, onProgress = () => {}, signal = null) {
    return new Promise((done) => {
      const out = new Float32Array(n);
      let got = 0;
      const finish = () => { this.recorders = this.recorders.filter((r) => r !== take); done(out.subarray(0, got)); };
      const take = (block) => {
        const part = block.subarray(0, Math.min(block.length, n - got));
        out.set(part, got);
        got += part.length;
        onProgress(got / n);
        if (got >= n) finish();
      };
      if (signal) signal.addEventListener("abort", finish, { once: true });
      this.recorders.push(take);
    });
  }

  close() {
    this.recorders = [];
    this.stream.getTracks().forEach((t) => t.stop());
    this.context.close().catch(() => {});
    if (current === this) current = null;
  }
}

async function start(stream, rate) {
  const context = rate ? new AudioContext({ sampleRate: rate }) : new AudioContext();
  try {
    await context.audioWorklet.addModule("/static/mic_worklet.js");
    const source = context.createMediaStreamSource(stream); // throws where the browser cannot resample a microphone
    const node = new AudioWorkletNode(context, "edgeteach-mic-tap");
    const mute = context.createGain();
    mute.gain.value = 0; // pulled by the output so it keeps running, but never heard
    source.connect(node).connect(mute).connect(context.destination);
    // without a click on the page first the browser keeps it suspended: Preview then offers a button to resume
    if (context.state === "suspended") context.resume().catch(() => {});
    return new Mic(context, stream, node);
  } catch (error) {
    context.close().catch(() => {});
    throw error;
  }
}

// The page's microphone, opened on first use (the browser asks the user once).
export async function openMic() {
  if (current) return current;
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false }, video: false });
  try {
    current = await start(stream, PREFERRED_RATE).catch(() => start(stream, null));
    onLeave(closeMic); // the next screen, or another tab's project, starts from a closed microphone
  } catch (error) {
    stream.getTracks().forEach((t) => t.stop());
    throw error;
  }
  return current;
}

export function closeMic() { if (current) current.close(); }
