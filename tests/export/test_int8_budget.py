"""A *trained* student's int8 streaming file against its float32 file (default run, ~1.5 min).

Once per module: the 62 k student (``norm="frame_ln"``) is trained with PSA only (``Distiller``,
no teacher) for ``STEPS`` steps on the built-in corpus (smoke size, 1 s clips), exported as
float32 and int8 PTQ streaming ``.tflite`` files, and both files enhance held-out mixtures
(test-split voices and noises, mixed with another seed than training) through
``StreamingEnhancer``. Only public entry points are used. Every random choice flows from ``SEED``.
"""
import numpy as np
import pytest

from tinyse_tf.export.fidelity import INT8_BUDGET

SEED = 0
STEPS = 300  # Adam 1e-3, batch BATCH x 1 s
BATCH = 8
TEST_SNR_DB = (0.0, 10.0)  # held-out mixtures: one 2 s clip per test-split speech file (8)
# Measured with train_and_export/score below (seeds 0-3; mean SI-SDR in dB over the 8 clips;
# 2026-11-30, LeakyReLU as one PRELU op):
#   seed  noisy  float32  int8 PTQ  float-noisy  int8-float
#   0     2.57    4.62     4.61      +2.05        -0.01
#   1     4.17    7.27     7.29      +3.10        +0.02
#   2     3.98    7.02     6.92      +3.04        -0.10
#   3     3.85    5.57     5.53      +1.72        -0.04
#   With the earlier MUL + MAXIMUM LeakyReLU int8-float was -0.02, -0.02, -0.38, -0.14
#   (docs/RESULTS.md, section 8).
#: A trained float file beats the noisy input by more than this (measured +1.72 to +3.10 dB;
#: an untrained student loses about 1.9 dB), so the check fails for a model that did not learn.
MIN_GAIN_DB = 0.5
#: int8 PTQ may lose at most this much mean SI-SDR against the float32 file of the same weights:
#: the recipe's budget (0.3 dB), 3x the worst loss measured above.
INT8_BUDGET_DB = INT8_BUDGET["si_sdr"]


def train_and_export(seed: int, steps: int, tmp):
    """``(corpus, {"float32" | "int8_ptq": path})``: the student trained and exported in ``tmp``."""
    import tf_keras as keras

    from tinyse_tf.data import CORPUS_SIZES, build_corpus, mixture_dataset, prepare_corpus
    from tinyse_tf.distill import Distiller
    from tinyse_tf.export.quantize import export_model
    from tinyse_tf.models import build_cruse

    corpus = prepare_corpus(build_corpus(tmp / "corpus", seed=seed, progress=False,
                                         **CORPUS_SIZES["smoke"]), tmp / "shards", progress=False)
    keras.utils.set_random_seed(seed)
    model = build_cruse("student", norm="frame_ln", seed=seed)
    distiller = Distiller(model, None, gamma=0.0)  # PSA only
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3))
    train = mixture_dataset(*corpus.split("train"), clip_seconds=1.0, batch_size=BATCH, seed=seed)
    if steps:
        distiller.fit(train, epochs=1, steps_per_epoch=steps, verbose=0)
    # Calibration: one batch of noisy training-split mixtures from a stream of its own.
    representative, _ = next(iter(mixture_dataset(*corpus.split("train"), clip_seconds=2.0,
                                                  batch_size=8, seed=seed + 1)))
    paths = export_model(model, tmp / "export", "s", int8=("ptq",),
                         representative_audio=list(representative.numpy()), seed=seed)
    return corpus, paths


def score(corpus, paths, seed: int, snr_db=TEST_SNR_DB) -> dict:
    """Mean SI-SDR (dB) over the held-out clips: ``{"noisy", "float32", "int8_ptq"}``."""
    import tinyse_tf
    from tinyse_tf.data import mixture_dataset
    from tinyse_tf.evaluation import si_sdr

    test = mixture_dataset(*corpus.split("test"), clip_seconds=2.0, batch_size=8, seed=seed + 2,
                           snr_range=snr_db, repeat=False)
    noisy, clean = (np.concatenate(x) for x in zip(*((n.numpy(), c.numpy()) for n, c in test)))
    out = {"noisy": float(np.mean([si_sdr(c, n) for n, c in zip(noisy, clean)]))}
    for kind in ("float32", "int8_ptq"):
        enhancer = tinyse_tf.StreamingEnhancer(paths[kind])
        out[kind] = float(np.mean([si_sdr(c, enhancer.enhance(n)) for n, c in zip(noisy, clean)]))
    return out


@pytest.fixture(scope="module")
def scores(tmp_path_factory):
    return score(*train_and_export(SEED, STEPS, tmp_path_factory.mktemp("int8_budget")), SEED)


def test_trained_float_file_improves_over_the_noisy_input(scores):
    assert scores["float32"] - scores["noisy"] > MIN_GAIN_DB, scores


def test_int8_file_is_within_its_budget_of_the_float_file(scores):
    assert scores["int8_ptq"] >= scores["float32"] - INT8_BUDGET_DB, scores


def test_int8_file_still_improves_over_the_noisy_input(scores):
    assert scores["int8_ptq"] - scores["noisy"] > 0.0, scores
