"""`edge llm pull REPO FILE`: download a GGUF from the Hugging Face Hub (when online) and print the
SHA-256 to pin in the config."""

from __future__ import annotations

import sys
from pathlib import Path

from edge.core.bundle import sha256_file


class PullError(RuntimeError):
    pass


# where `edge llm pull` saves models, relative to the current folder (the Studio's LLM playground looks there too)
DEFAULT_DIR = "models"


def missing_hub_message() -> str:
    """How to install huggingface_hub into the environment this `edge` runs from: the llm role brings it in a
    checkout; the pip line names this very interpreter, so it is right on an installed device too."""
    return ("`edge llm pull` needs the huggingface_hub package, which the llm role installs: run `scripts/setup.sh edge llm` "
            f"in the EdgeTeach checkout, or `{sys.executable} -m pip install huggingface_hub` "
            "(or download the .gguf yourself and set llm.model)")


def pull(repo: str, filename: str, dest_dir: str = DEFAULT_DIR, revision: str | None = None) -> tuple[Path, str]:
    if not filename.endswith(".gguf"):
        raise PullError(f"{filename}: llama.cpp loads .gguf files; pick a .gguf file from the repository's file list")
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise PullError(missing_hub_message()) from None
    target_dir = Path(dest_dir).expanduser()
    target_dir.mkdir(parents=True, exist_ok=True)
    try:
        # local_dir: the file lands in the models folder itself, not a second copy from the Hub's cache.
        path = Path(hf_hub_download(repo_id=repo, filename=filename, revision=revision, local_dir=str(target_dir)))
    except Exception as exc:  # the Hub's error classes move between releases; the message is what helps
        raise PullError(f"cannot download {repo}/{filename}: {type(exc).__name__}: {exc}. Check the network (HF_HUB_OFFLINE must "
                        "be unset), and the repository and file names on the model's Files page") from None
    return path, sha256_file(path)
