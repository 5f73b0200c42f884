"""The movie-review sentences (Hutto & Gilbert, ICWSM 2014), shipped in the vaderSentiment sdist: the demo's data."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inferforge.errors import UserError


# --- The movie-review sentences (Hutto & Gilbert, ICWSM 2014), shipped in the vaderSentiment sdist ---

VADER_REQUIREMENT = "vaderSentiment==3.3.2"
VADER_SDIST_DIR = "vaderSentiment-3.3.2"
MOVIE_REVIEW_MEMBER = "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"
MOVIE_REVIEW_SHA256 = "c8293b0d942e90e223ea2c0955d969040d1a1be514a978b9af0698940bd13350"
SENTIMENT_LABELS = ("negative", "positive")


@dataclass(frozen=True)
class ScoredSentence:
    """One movie-review sentence with its mean human sentiment score (-4..4)."""

    id: str
    score: float
    text: str

    @property
    def label(self) -> str:
        return SENTIMENT_LABELS[int(self.score > 0)]


@dataclass(frozen=True)
class MovieReviewSplit:
    train: list[ScoredSentence]
    test: list[ScoredSentence]


def cache_dir() -> Path:
    """Where downloaded data is kept: $INFERFORGE_CACHE, else ~/.cache/inferforge."""
    return Path(os.environ.get("INFERFORGE_CACHE") or Path.home() / ".cache" / "inferforge").expanduser()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def movie_review_file(cache: Path | None = None) -> Path:
    """The movie-review ground-truth file, fetched once from the vaderSentiment sdist on PyPI."""
    target = (cache or cache_dir()) / "movie-reviews" / Path(MOVIE_REVIEW_MEMBER).name
    if target.exists() and _sha256(target) == MOVIE_REVIEW_SHA256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        tmp_path = Path(tmp)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--disable-pip-version-check", "--quiet", VADER_REQUIREMENT, "-d", str(tmp_path)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        sdists = list(tmp_path.glob("vaderSentiment-*.tar.gz"))
        if result.returncode != 0 or not sdists:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise UserError(
                f"Could not download the movie-review sentences ({' '.join(cmd[2:])} failed: "
                f"{detail[-1] if detail else 'no sdist'}); check that PyPI is reachable."
            )
        with tarfile.open(sdists[0]) as sdist:
            inner = sdist.extractfile(f"{VADER_SDIST_DIR}/additional_resources/hutto_ICWSM_2014.tar.gz")
            with tarfile.open(fileobj=inner) as resources:
                payload = resources.extractfile(MOVIE_REVIEW_MEMBER).read()
        if hashlib.sha256(payload).hexdigest() != MOVIE_REVIEW_SHA256:
            raise UserError(f"The movie-review file in {VADER_REQUIREMENT} does not have the expected SHA-256; refusing to use it.")
        partial = tmp_path / "movie.txt"
        partial.write_bytes(payload)
        partial.replace(target)
    return target


def movie_review_sentences(cache: Path | None = None) -> list[ScoredSentence]:
    """All 10,605 sentences with their scores, in file order."""
    sentences = []
    for line in movie_review_file(cache).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        sentence_id, score, text = line.split("\t", 2)
        sentences.append(ScoredSentence(sentence_id, float(score), text.strip()))
    return sentences


def movie_review_split(test_size: int = 2000, seed: int = 0, cache: Path | None = None) -> MovieReviewSplit:
    """Positive/negative sentences (score 0 dropped, repeated texts kept once), shuffled and split.

    The same seed gives the same split everywhere: the fine-tuning example, the tests and the bench.
    """
    seen: set[str] = set()
    labelled = []
    for s in movie_review_sentences(cache):
        if s.score != 0 and s.text not in seen:
            seen.add(s.text)
            labelled.append(s)
    order = np.random.RandomState(seed).permutation(len(labelled))
    shuffled = [labelled[i] for i in order]
    if not 0 < test_size < len(shuffled):
        raise UserError(f"Test size must be between 1 and {len(shuffled) - 1}, got {test_size}.")
    return MovieReviewSplit(train=shuffled[test_size:], test=shuffled[:test_size])
