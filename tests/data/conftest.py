"""Shared corpora for the shard and pipeline tests."""
import pytest

from tinyse_tf.data import build_corpus, prepare_corpus

TINY = {"n_speech": (6, 2, 3), "n_noise": (6, 2, 2), "noise_seconds": 1.5}


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    return build_corpus(tmp_path_factory.mktemp("corpus") / "c", seed=0, progress=False, **TINY)


@pytest.fixture(scope="module")
def tiny_prepared(tiny_corpus, tmp_path_factory):
    return prepare_corpus(tiny_corpus, tmp_path_factory.mktemp("prepared") / "d", progress=False)
