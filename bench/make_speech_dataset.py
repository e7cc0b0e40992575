"""Makes the spoken-word benchmark set for the sound trainer (espeak-ng voices + sox; nothing downloaded).

    .venv/bin/python bench/make_speech_dataset.py OUT_DIR [--speakers 18] [--unseen 6] [--takes 15]

Writes two train/val layouts over the same clips (hard links), which `trainer train` reads directly:

    OUT_DIR/all/<word>/<speaker>_<word>_<take>.wav    every clip, 8 kHz mono 16-bit
    OUT_DIR/seen/{train,val}/<word>/...               every speaker in training; val = other takes
    OUT_DIR/unseen/{train,val}/<word>/...             val = speakers never heard in training
    OUT_DIR/few/{train,val}/<word>/...                only 5 training speakers, same unseen val (harder)
    OUT_DIR/_background_noise_/*.wav                  long noise recordings (copy into a data set to use)
    OUT_DIR/speakers.json                             who is who, and which split they are in

Defaults mirror the real check: ten digits, ~2,700 clips, 8 kHz, 0.2-2.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.speech_synth import BACKGROUNDS, COMMANDS, DIGITS, Clip, generate_words, make_background, make_speakers  # noqa: E402

FEW_SPEAKERS = 5  # like a small real recording set: a handful of people


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:  # another file system: copy instead
        dst.write_bytes(src.read_bytes())


def build(out: Path, words: list[str], n_speakers: int, n_unseen: int, takes: int, seen_val: float, seed: int, backgrounds: bool) -> dict:
    from tqdm import tqdm

    speakers = make_speakers(n_speakers, seed=seed)
    total = len(words) * len(speakers) * takes
    with tqdm(total=total, desc="speaking", unit="clip") as bar:
        clips = generate_words(out / "all", words, speakers, takes, seed=seed, progress=bar.update)
    rng = random.Random(seed)
    unseen_names = {s.name for s in rng.sample(speakers, n_unseen)}
    n_val_takes = max(1, round(takes * seen_val))
    few_names = {s.name for s in speakers if s.name not in unseen_names}
    few_names = set(sorted(few_names)[:FEW_SPEAKERS])
    for clip in clips:
        unseen_split = "val" if clip.speaker.name in unseen_names else "train"
        _link(clip.path, out / "unseen" / unseen_split / clip.word / clip.path.name)
        if unseen_split == "val" or clip.speaker.name in few_names:
            _link(clip.path, out / "few" / unseen_split / clip.word / clip.path.name)
        # seen split: the same held-out take numbers for every speaker and word (deterministic, stratified)
        seen_split = "val" if (clip.take + hash_take(clip)) % takes < n_val_takes else "train"
        _link(clip.path, out / "seen" / seen_split / clip.word / clip.path.name)
    if backgrounds:
        for index, kind in enumerate(BACKGROUNDS):
            make_background(kind, out / "_background_noise_" / f"{kind}.wav", seconds=30.0, seed=seed + index)
    summary = {
        "words": words,
        "clips": len(clips),
        "takes": takes,
        "speakers": [asdict(s) | {"unseen_split": "val" if s.name in unseen_names else "train"} for s in speakers],
    }
    (out / "speakers.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def hash_take(clip: Clip) -> int:
    """Rotates which takes are held out per speaker/word, so val is not always the first takes."""
    return sum(map(ord, clip.speaker.name + clip.word))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--words", default="digits", help="'digits', 'commands' or a comma-separated list")
    parser.add_argument("--speakers", type=int, default=18)
    parser.add_argument("--unseen", type=int, default=6, help="speakers kept out of training in the unseen split")
    parser.add_argument("--takes", type=int, default=15, help="takes per speaker and word")
    parser.add_argument("--seen-val", type=float, default=0.2, help="share of takes held out in the seen split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-background", action="store_true", help="skip the _background_noise_ recordings")
    args = parser.parse_args(argv)
    words = {"digits": list(DIGITS), "commands": list(COMMANDS)}.get(args.words) or [w.strip() for w in args.words.split(",") if w.strip()]
    if not 0 < args.unseen < args.speakers:
        parser.error("--unseen must be between 1 and --speakers - 1")
    summary = build(args.out, words, args.speakers, args.unseen, args.takes, args.seen_val, args.seed, not args.no_background)
    print(f"{summary['clips']} clips, {len(words)} words, {args.speakers} speakers ({args.unseen} unseen) in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
