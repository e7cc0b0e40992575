"""Spoken-word data made on this machine with espeak-ng and sox, for benchmarks, tests and the demo.

Real speech data sets cannot ship with the repository, yet the sound trainer must be measured on
speakers it never heard. espeak-ng has many accents (`en-us`, `en-gb-scotland`, ...) and voice
variants (`+m3`, `+f2`, `+klatt4`, ...); a "speaker" here is one accent+variant with its own base speed,
pitch, loudness, microphone colouring and room noise, so training on some speakers and testing on
others is a speaker-disjoint split, like the 8 kHz spoken-digit recordings the trainer is checked on.
Clips are 8 kHz mono 16-bit WAV from about 0.2 s to over 2 s long (trimmed words, slow words, words
with silence around them). Background recordings (brown/pink noise, mains hum, fan, tap, babble) are
long 16 kHz files for a `_background_noise_` folder.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainer.audio.noise import TILTS, coloured_noise

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
# English accents espeak-ng ships (the mbrola ones need extra packages, so they are left out).
ACCENTS = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
# Voice variants that still sound like a person (robots, whispers and croaks are left out).
VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
    "klatt", "klatt2", "klatt3", "klatt4", "Alex", "Andy", "Annie", "Denis", "Gene", "Lee", "Michael",
    "Mike", "adam", "anika", "aunty", "belinda", "benjamin", "boris", "caleb", "david", "ed", "edward",
    "grandma", "grandpa", "iven", "john", "linda", "max", "michel", "norbert", "paul", "pedro", "quincy",
    "rob", "robert", "sandro", "shelby", "steph", "travis", "victor", "zac",
)


class SynthError(RuntimeError):
    """espeak-ng or sox is missing or failed."""


def require_tools() -> None:
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        raise SynthError(f"{', '.join(missing)} not found; install the Debian packages espeak-ng and sox (scripts/setup.sh does)")


@dataclass(frozen=True)
class Speaker:
    """One synthetic person: accent, voice, habits and the room/microphone they record in."""

    name: str
    voice: str  # espeak-ng voice, e.g. "en-us+f3"
    speed: int  # words per minute
    pitch: int  # 0-99
    gain_db: float
    snr_db: float  # noise floor of their room
    highpass_hz: int  # microphone colouring
    lowpass_hz: int


def make_speakers(count: int, seed: int = 0) -> list[Speaker]:
    """`count` distinct speakers; each variant is used once before any repeats, so speakers differ in timbre."""
    rng = random.Random(seed)
    variants = list(VARIANTS)
    rng.shuffle(variants)
    speakers = []
    for index in range(count):
        variant = variants[index % len(variants)]
        accent = ACCENTS[index % len(ACCENTS)]
        speakers.append(
            Speaker(
                name=f"s{index:02d}-{accent}-{variant}",
                voice=f"{accent}+{variant}",
                speed=rng.randint(120, 200),
                pitch=rng.randint(25, 75),
                gain_db=rng.uniform(-12.0, 0.0),
                snr_db=rng.uniform(18.0, 40.0),
                highpass_hz=rng.choice([60, 100, 150, 250]),
                lowpass_hz=rng.choice([2800, 3400, 3800]),
            )
        )
    return speakers


def _run(command: Sequence[str]) -> None:
    result = subprocess.run(list(command), capture_output=True)
    if result.returncode != 0:
        raise SynthError(f"{' '.join(command)} failed: {result.stderr.decode(errors='replace').strip()}")


def speak(word: str, speaker: Speaker, out_path: Path, rng: random.Random, rate: int = 8000) -> None:
    """One spoken word by `speaker`, recorded at `rate` Hz mono with that speaker's channel and noise.

    Each take varies speed, pitch, tempo and the silence kept around the word, as repeated takes
    by one person do; some are trimmed tight (down to ~0.2 s) and some keep long silence (over 2 s)."""
    import soundfile

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        shaped = Path(tmp) / "shaped.wav"
        speed = max(80, int(speaker.speed * rng.uniform(0.8, 1.2)))
        pitch = int(np.clip(speaker.pitch + rng.randint(-12, 12), 0, 99))
        _run(["espeak-ng", "-v", speaker.voice, "-s", str(speed), "-p", str(pitch), "-w", str(raw), word])
        effects = [
            "highpass", str(speaker.highpass_hz), "lowpass", str(speaker.lowpass_hz),
            "pitch", str(rng.randint(-150, 150)), "tempo", f"{rng.uniform(0.85, 1.2):.3f}",
            # trim espeak's silence so the kept silence below is a choice, not an artefact
            "silence", "1", "0.01", "0.5%", "reverse", "silence", "1", "0.01", "0.5%", "reverse",
        ]
        # -R: sox seeds its dither (and synth noise) with a fixed number, so a seeded set is the same on every run
        _run(["sox", "-R", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(shaped), *effects])
        speech, file_rate = soundfile.read(str(shaped), dtype="float32")
    style = rng.random()
    if style < 0.6:  # a little breathing room, as a recorder trimmed by hand leaves
        before, after = rng.uniform(0.0, 0.12), rng.uniform(0.0, 0.15)
    elif style < 0.85:  # trimmed hard: fast speech gives ~0.2 s clips
        before, after = 0.0, 0.0
    else:  # recorder left running: clips over 2 s
        before, after = rng.uniform(0.3, 1.0), rng.uniform(0.4, 1.2)
    pad_before, pad_after = int(before * file_rate), int(after * file_rate)
    clip = np.concatenate([np.zeros(pad_before, np.float32), speech, np.zeros(pad_after, np.float32)])
    peak = float(np.abs(speech).max()) or 1.0
    clip = clip / peak * 0.7
    rms = float(np.sqrt(np.mean(np.square(speech / peak * 0.7)))) or 1e-3
    snr = speaker.snr_db + rng.uniform(-6.0, 6.0)
    noise = coloured_noise(len(clip), TILTS[rng.choice(["pink", "brown", "white"])], np.random.default_rng(rng.randrange(1 << 30)))
    clip = clip + noise * rms / (10 ** (snr / 20))
    clip = clip * 10 ** ((speaker.gain_db + rng.uniform(-4.0, 4.0)) / 20)
    clip = np.clip(clip, -1.0, 1.0)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(out_path), clip.astype(np.float32), file_rate, subtype="PCM_16")


BACKGROUNDS = ("brown_noise", "pink_noise_hum", "fan", "running_tap", "white_noise_hiss", "babble")


def make_background(kind: str, out_path: Path, seconds: float = 20.0, rate: int = 16000, seed: int = 0) -> None:
    """A long room recording for `_background_noise_`, made with sox's synth (babble: reversed espeak speech)."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    length = f"{seconds:.2f}"
    base = ["sox", "-R", "-n", "-r", str(rate), "-c", "1", "-b", "16", str(out_path)]
    if kind == "brown_noise":
        _run([*base, "synth", length, "brownnoise", "vol", "0.5"])
    elif kind == "pink_noise_hum":
        _run([*base, "synth", length, "pinknoise", "synth", length, "sine", "mix", "50", "synth", length, "sine", "mix", "150", "vol",
              "0.25"])
    elif kind == "fan":
        _run([*base, "synth", length, "brownnoise", "synth", length, "sine", "amod", "30", "lowpass", "600", "tremolo", "3", "30", "vol",
              "0.6"])
    elif kind == "running_tap":
        _run([*base, "synth", length, "whitenoise", "bandpass", "2500", "1.5q", "tremolo", "11", "40", "vol", "0.3"])
    elif kind == "white_noise_hiss":
        _run([*base, "synth", length, "whitenoise", "highpass", "3000", "vol", "0.08"])
    elif kind == "babble":
        _make_babble(out_path, seconds, rate, seed)
    else:
        raise ValueError(f"unknown background {kind!r}; choose from {', '.join(BACKGROUNDS)}")


def _make_babble(out_path: Path, seconds: float, rate: int, seed: int) -> None:
    """Several voices reading a sentence backwards at once: speech-like but no word of the vocabulary."""
    import soundfile

    rng = random.Random(seed)
    total = np.zeros(int(seconds * rate), np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        for index, speaker in enumerate(make_speakers(5, seed=seed + 1)):
            part = Path(tmp) / f"b{index}.wav"
            text = "the quick brown fox jumps over the lazy dog while the kettle sings in the kitchen"
            _run(["espeak-ng", "-v", speaker.voice, "-s", str(speaker.speed), "-w", str(part) + ".raw.wav", text])
            _run(["sox", "-R", str(part) + ".raw.wav", "-r", str(rate), "-c", "1", str(part), "reverse"])
            voice, _ = soundfile.read(str(part), dtype="float32")
            start = rng.randrange(0, max(1, total.size // 2))
            while start < total.size:
                end = min(total.size, start + voice.size)
                total[start:end] += voice[: end - start] * 0.25
                start = end + rng.randrange(0, rate)
    total = total / (np.abs(total).max() + 1e-6) * 0.5
    soundfile.write(str(out_path), total, rate, subtype="PCM_16")


@dataclass(frozen=True)
class Clip:
    path: Path
    word: str
    speaker: Speaker
    take: int


def generate_words(
    out_dir: Path,
    words: Iterable[str],
    speakers: Sequence[Speaker],
    takes: int,
    seed: int = 0,
    rate: int = 8000,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[Clip]:
    """Writes `out_dir/<word>/<speaker>_<take>.wav` for every word, speaker and take; returns the clips.

    Each clip has its own seeded random stream, so the set is the same whatever the worker count."""
    require_tools()
    jobs = [
        Clip(out_dir / word / f"{speaker.name}_{word}_{take}.wav", word, speaker, take)
        for speaker in speakers
        for word in words
        for take in range(takes)
    ]

    def one(clip: Clip) -> Clip:
        rng = random.Random(f"{seed}/{clip.speaker.name}/{clip.word}/{clip.take}")
        speak(clip.word, clip.speaker, clip.path, rng, rate=rate)
        return clip

    with ThreadPoolExecutor(max_workers=workers or max(1, min(4, os.cpu_count() or 1))) as pool:
        for _done in pool.map(one, jobs):
            if progress is not None:
                progress(1)
    return jobs
