// Runs on the browser's audio thread (an AudioWorklet, loaded by mic.js): hands the microphone's samples, mixed
// down to mono, to the page in blocks of BLOCK samples (one message per 128-sample quantum would be ~375 a second).

const BLOCK = 2048;

class MicTap extends AudioWorkletProcessor {
  constructor() {
    super();
    this.block = new Float32Array(BLOCK);
    this.filled = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || !channels.length) return true;
    const frames = channels[0].length;
    for (let i = 0; i < frames; i += 1) {
      let sum = 0;
      for (const channel of channels) sum += channel[i];
      this.block[this.filled] = sum / channels.length;
      this.filled += 1;
      if (this.filled === BLOCK) {
        this.port.postMessage(this.block);
        this.block = new Float32Array(BLOCK);
        this.filled = 0;
      }
    }
    return true;
  }
}

registerProcessor("edgeteach-mic-tap", MicTap);
