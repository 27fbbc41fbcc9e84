"""A *trained* student's int8 streaming file against its float32 file (default run, ~1.5 min).

Once per module: the 62 k student (``norm="frame_ln"``) is trained with PSA only (``Distiller``,
no teacher) for ``STEPS`` steps on the built-in corpus (smoke size, 1 s clips), exported as
float32 and int8 PTQ streaming ``.tflite`` files, and both files enhance held-out mixtures
(test-split voices and noises, mixed with another seed than training) through
``StreamingEnhancer``. Only public entry points are used. Every random choice flows from ``SEED``.
"""
import numpy as np
import pytest

SEED = 0
STEPS = 300  # Adam 1e-3, batch BATCH x 1 s
BATCH = 8
TEST_SNR_DB = (0.0, 10.0)  # held-out mixtures: one 2 s clip per test-split speech file (8)
# Measured with train_and_export/score below (seeds 0-3; mean SI-SDR in dB over the 8 clips):
#   seed  noisy  float32  int8 PTQ  float-noisy  int8-noisy  int8-float
#   0     5.23    6.33     6.31      +1.10        +1.08       -0.02
#   1     5.52   10.19    10.17      +4.67        +4.65       -0.02
#   2     4.49    6.63     6.25      +2.14        +1.76       -0.38
#   3     3.74    4.83     4.69      +1.09        +0.95       -0.14
#   the untrained student (seed 0, 0 steps): float-noisy -1.88, int8-float -0.19.
#   At -5..5 dB input, int8-float was -0.01, -0.06, -0.28, -0.19 (seeds 0-3).
#: A trained float file beats the noisy input by more than this (measured +1.09 to +4.67 dB;
#: untrained: -1.88 dB), so the check fails for a model that did not learn.
MIN_GAIN_DB = 0.5
#: int8 PTQ may lose at most this much mean SI-SDR against the float32 file of the same weights:
#: about twice the worst loss measured above (-0.38 dB). It is a budget for this short schedule:
#: the README reports 0.6-1.0 dB at 0 dB input for the demo schedule's students (800 steps).
INT8_BUDGET_DB = 0.75


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
