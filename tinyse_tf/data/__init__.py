"""Data: audio files, the built-in corpus, on-the-fly mixtures and fixed test sets.

All audio is 16 kHz mono float32. Shapes in brief:

- :func:`load_audio` ``(path) -> float32 [n]``; :func:`write_audio` ``(path, [n])``.
- :func:`build_corpus` ``-> Corpus`` (file lists per split), built once into the user cache.
- :func:`mixture_dataset` ``-> tf.data.Dataset`` of ``(noisy, clean)``, each float32
  ``[batch, clip_samples]``.
- :func:`write_test_sets` writes ``<out>/<set>/{noisy,clean}/<id>.wav``; :func:`load_test_set`
  lists them.

See docs/DATA.md.
"""
from tinyse_tf.data.audio_io import (AudioError, AudioSkipWarning, DataError, list_audio,
                                     load_audio, load_files, load_folder, probe_audio, write_audio)
from tinyse_tf.data.builtin import (CORPUS_SIZES, CORPUS_VERSION, build_corpus, default_data_dir,
                                    load_corpus, split_voices)
from tinyse_tf.data.corpus import SPLITS, Corpus
from tinyse_tf.data.mixing import mix_np, mix_tf
from tinyse_tf.data.pipeline import mixture_dataset
from tinyse_tf.data.testsets import load_test_set, write_test_sets

__all__ = [
    "AudioError", "AudioSkipWarning", "DataError", "list_audio", "load_audio", "load_files",
    "load_folder", "probe_audio", "write_audio",
    "CORPUS_SIZES", "CORPUS_VERSION", "build_corpus", "default_data_dir", "load_corpus",
    "split_voices", "SPLITS", "Corpus", "mix_np", "mix_tf", "mixture_dataset",
    "load_test_set", "write_test_sets",
]
