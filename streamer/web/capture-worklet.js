// AudioWorklet processor of the speaker page: microphone audio (any rate, any channel count) -> 16 kHz mono
// PCM16 frames of `frameSamples`, posted to the page with the frame's peak and RMS level.
//
// Resampling is windowed-sinc interpolation with a low-pass at 0.92 of the lower Nyquist frequency, so that
// 44.1/48 kHz input does not alias into the speech band. Kernels are cached per 1/256-sample phase.

const PHASES = 256;
const ZERO_CROSSINGS = 8;

class SincResampler {
  constructor(inRate, outRate) {
    this.step = inRate / outRate; // input samples per output sample
    this.passthrough = inRate === outRate;
    this.cutoff = Math.min(1, outRate / inRate) * 0.92;
    this.half = Math.ceil(ZERO_CROSSINGS / this.cutoff);
    this.kernels = new Array(PHASES + 1);
    this.buffer = new Float32Array(this.half); // leading zeros: the first output is input sample 0
    this.position = this.half;
  }

  kernel(phase) {
    let taps = this.kernels[phase];
    if (taps) return taps;
    const frac = phase / PHASES;
    taps = new Float32Array(2 * this.half);
    let sum = 0;
    for (let i = 0; i < taps.length; i++) {
      const distance = i - this.half + 1 - frac; // from the output position to input sample c + k
      const x = this.cutoff * distance;
      const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
      const window = 0.5 * (1 + Math.cos((Math.PI * distance) / this.half));
      taps[i] = sinc * window;
      sum += taps[i];
    }
    for (let i = 0; i < taps.length; i++) taps[i] /= sum; // unity gain at DC
    this.kernels[phase] = taps;
    return taps;
  }

  /** Float32Array in -> array of output samples. */
  process(input) {
    if (this.passthrough) return input;
    const buffer = new Float32Array(this.buffer.length + input.length);
    buffer.set(this.buffer);
    buffer.set(input, this.buffer.length);
    const out = [];
    const half = this.half;
    while (this.position + half < buffer.length) {
      const center = Math.floor(this.position);
      const taps = this.kernel(Math.round((this.position - center) * PHASES));
      const first = center - half + 1;
      let acc = 0;
      for (let i = 0; i < taps.length; i++) acc += buffer[first + i] * taps[i];
      out.push(acc);
      this.position += this.step;
    }
    const keep = Math.max(0, Math.floor(this.position) - half);
    this.buffer = buffer.slice(keep);
    this.position -= keep;
    return out;
  }
}

class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { targetRate, frameSamples } = options.processorOptions;
    this.frameSamples = frameSamples;
    this.resampler = new SincResampler(sampleRate, targetRate);
    this.frame = new Int16Array(frameSamples);
    this.fill = 0;
    this.peak = 0;
    this.sumSquares = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const length = channels[0].length;
    let mono = channels[0];
    if (channels.length > 1) {
      mono = new Float32Array(length);
      for (const channel of channels) for (let i = 0; i < length; i++) mono[i] += channel[i];
      for (let i = 0; i < length; i++) mono[i] /= channels.length;
    }
    for (const sample of this.resampler.process(mono)) {
      const s = Math.max(-1, Math.min(1, sample));
      this.frame[this.fill++] = s < 0 ? Math.round(s * 0x8000) : Math.round(s * 0x7fff);
      this.peak = Math.max(this.peak, Math.abs(s));
      this.sumSquares += s * s;
      if (this.fill === this.frameSamples) this.post();
    }
    return true;
  }

  post() {
    const rms = Math.sqrt(this.sumSquares / this.fill);
    this.port.postMessage({ pcm: this.frame.buffer, peak: this.peak, rms }, [this.frame.buffer]);
    this.frame = new Int16Array(this.frameSamples);
    this.fill = 0;
    this.peak = 0;
    this.sumSquares = 0;
  }
}

registerProcessor("streamer-capture", CaptureProcessor);
