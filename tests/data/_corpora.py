"""Corpora written for the shard and pipeline tests."""
from pathlib import Path

import numpy as np

from tinyse_tf.data import Corpus, write_audio
from tinyse_tf.data.corpus import SPLITS

#: A shard size (MB) that holds exactly 3 files of :func:`tagged_corpus`.
THREE_TAGGED_MB = 22000 / 2 ** 20


def tag_length(k: int) -> int:
    return 3000 + 50 * k


def tagged_corpus(root: Path, n_speech=12, noise_lengths=(4000, 5000)) -> Corpus:
    """A corpus whose speech files all have different lengths (``tag_length(k)`` samples, shorter
    than 0.5 s), so the nonzero part of a 0.5 s clean clip names the file it came from; the same
    files in every split. Any 3 of them fit in 11,000 samples, no 4 do."""
    rng = np.random.default_rng(0)
    speech = [write_audio(root / "speech" / f"s{k:02d}.wav",
                          (0.3 + 0.1 * rng.random(tag_length(k))) * rng.choice([-1, 1]))
              for k in range(n_speech)]
    noise = [write_audio(root / "noise" / f"n{k}.wav", 0.1 * rng.standard_normal(n))
             for k, n in enumerate(noise_lengths)]
    return Corpus(speech={s: speech for s in SPLITS}, noise={s: noise for s in SPLITS})


def support_length(clean: np.ndarray) -> int:
    """Samples from the first to the last nonzero one: the speech file's length."""
    nonzero = np.nonzero(clean)[0]
    return int(nonzero[-1] - nonzero[0] + 1)
