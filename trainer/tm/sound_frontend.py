"""Teachable Machine's sound front end (speech-commands 0.4 "BROWSER_FFT") as ONNX, so the device feeds raw audio.

In the browser, a Web Audio AnalyserNode (fftSize 2048, smoothingTimeConstant 0) is read every 1024 samples of
44.1 kHz audio: each frame is the magnitude spectrum of the last 2048 samples under a Blackman window, divided
by 2048, in dB; speech-commands keeps the first 232 bins of 43 frames and normalises the whole 43 x 232 patch
to zero mean and unit variance. (tensorflow/tfjs-models speech-commands/src/browser_fft_extractor.ts and
browser_fft_utils.ts; Chromium's realtime_analyser.cc for the window and scaling; checked against Chromium's
own AnalyserNode in tests/trainer/test_import_tm_sound.py.)

The graph takes `waveform` [N, 45056] at 44.1 kHz: 44 blocks of 1024 samples, so that every one of the 43
frames sees a full 2048 samples of history, as in the browser's continuous stream (frame k covers blocks k
and k + 1). The device resamples any microphone or file to 44.1 kHz as for our own sound bundles.
"""

from __future__ import annotations

import numpy as np

from trainer.tm.graph import GraphBuilder

SAMPLE_RATE = 44100
FFT_SIZE = 2048
HOP = 1024
FRAMES = 43
BINS = 232
WINDOW_SAMPLES = (FRAMES + 1) * HOP  # 45056
HOP_SAMPLES = 22016  # TM's live overlap of 0.5 on its 44,032-sample examples
DB_FLOOR_POWER = 1e-20  # -200 dB: digital silence stays finite (the browser would give -Infinity)
FRONT_END = (f"in_graph: speech-commands BROWSER_FFT: {FRAMES} frames every {HOP} samples of 20*log10(|FFT({FFT_SIZE}-sample Blackman "
             f"window)| / {FFT_SIZE}), first {BINS} bins, the patch normalised to zero mean and unit variance")


def blackman(n: int) -> np.ndarray:
    """Chromium's AnalyserNode window (realtime_analyser.cc): Blackman with alpha 0.16 over i / n (periodic)."""
    x = np.arange(n, dtype=np.float64) / n
    return 0.42 - 0.5 * np.cos(2 * np.pi * x) + 0.08 * np.cos(4 * np.pi * x)


def dft_matrices() -> tuple[np.ndarray, np.ndarray]:
    """[FFT_SIZE, BINS] real and imaginary DFT rows for the kept bins, the window folded in."""
    n = np.arange(FFT_SIZE, dtype=np.float64)[:, None]
    k = np.arange(BINS, dtype=np.float64)[None, :]
    angle = 2 * np.pi * n * k / FFT_SIZE
    window = blackman(FFT_SIZE)[:, None]
    return (window * np.cos(angle)).astype(np.float32), (-window * np.sin(angle)).astype(np.float32)


def spectrogram_nchw(g: GraphBuilder, waveform: str) -> str:
    """waveform [N, WINDOW_SAMPLES] -> the normalised patch [N, 1, FRAMES, BINS] (NCHW for the first convolution)."""
    blocks = g.op("Reshape", [waveform, g.const(np.array([-1, FRAMES + 1, HOP], np.int64), "blocks_shape")], "blocks")

    def part(start: int, end: int, hint: str) -> str:
        bounds = [g.const(np.array([value], np.int64), f"{hint}_{what}") for what, value in (("start", start), ("end", end), ("axis", 1))]
        return g.op("Slice", [blocks, *bounds], hint)

    frames = g.op("Concat", [part(0, FRAMES, "first_half"), part(1, FRAMES + 1, "second_half")], "frames", axis=2)  # [N, 43, 2048]
    cos, sin = dft_matrices()
    real = g.op("MatMul", [frames, g.const(cos, "dft_real")], "spectrum_real")
    imag = g.op("MatMul", [frames, g.const(sin, "dft_imag")], "spectrum_imag")
    power = g.op("Add", [g.op("Mul", [real, real], "real_sq"), g.op("Mul", [imag, imag], "imag_sq")], "power")
    power = g.op("Max", [power, g.const(np.array(DB_FLOOR_POWER, np.float32), "power_floor")], "power_floored")
    # 20*log10(|X| / 2048) = 10*log10(power) - 20*log10(2048), with log10(p) = ln(p) / ln(10)
    db = g.op("Mul", [g.op("Log", [power], "ln_power"), g.const(np.array(10 / np.log(10), np.float32), "db_per_neper")], "db_raw")
    db = g.op("Sub", [db, g.const(np.array(20 * np.log10(FFT_SIZE), np.float32), "db_fft_scale")], "db")
    mean = g.op("ReduceMean", [db], "patch_mean", axes=[1, 2], keepdims=1)
    centred = g.op("Sub", [db, mean], "centred")
    variance = g.op("ReduceMean", [g.op("Mul", [centred, centred], "centred_sq")], "patch_variance", axes=[1, 2], keepdims=1)
    std = g.op("Sqrt", [g.op("Add", [variance, g.const(np.array(1e-12, np.float32), "variance_eps")], "variance_eps_added")], "patch_std")
    patch = g.op("Div", [centred, std], "patch")
    return g.op("Unsqueeze", [patch, g.const(np.array([1], np.int64), "channel_axis")], "patch_nchw")
