"""The streaming mixture pipeline (tinyse_tf.data.pipeline) over prepared shards."""
import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from _corpora import THREE_TAGGED_MB, support_length, tag_length, tagged_corpus
from tinyse_tf.constants import SAMPLE_RATE
from tinyse_tf.data import mixture_dataset, prepare_corpus, worker_input_context


def _snr_db(noisy, clean):
    return 10 * np.log10(np.sum(clean ** 2, -1) / np.sum((noisy - clean) ** 2, -1))


def _batches(ds, n):
    return [(a.numpy(), b.numpy()) for a, b in ds.take(n)]


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    """12 speech files of distinct lengths in 4 shards (3 files each), 2 noise files."""
    root = tmp_path_factory.mktemp("tagged")
    corpus = tagged_corpus(root)
    return prepare_corpus(corpus, root / "prepared", shard_mb=THREE_TAGGED_MB, progress=False)


def test_shapes_snr_level_and_no_clipping(tiny_prepared):
    ds = mixture_dataset(*tiny_prepared.split("train"), clip_seconds=1.0, batch_size=8,
                         snr_range=(3, 3), level_range_db=(-35, -15), seed=0)
    assert [tuple(s.shape) for s in ds.element_spec] == [(8, SAMPLE_RATE)] * 2
    for noisy, clean in _batches(ds, 4):
        assert noisy.dtype == clean.dtype == np.float32 and noisy.shape == (8, SAMPLE_RATE)
        speaking = np.sum(clean ** 2, -1) > 1e-6
        assert speaking.any()
        np.testing.assert_allclose(_snr_db(noisy, clean)[speaking], 3.0, atol=0.01)
        assert np.abs(noisy).max() <= 0.99 + 1e-5 and np.abs(clean).max() <= 0.99 + 1e-5
        level = 10 * np.log10(np.mean(noisy ** 2, -1))
        assert np.all(level <= -15 + 0.01) and np.all(level >= -35 - 0.01)


def test_same_seed_same_batches_whatever_the_global_seed(tiny_prepared):
    from tinyse_tf._tf import tf

    def batches(seed, global_seed):
        tf.random.set_seed(global_seed)
        ds = mixture_dataset(*tiny_prepared.split("train"), clip_seconds=0.5, batch_size=4,
                             seed=seed)
        return _batches(ds, 5)  # 20 examples: past the end of the first pass (6 files)

    a, b, c = batches(7, 1), batches(7, 2), batches(8, 1)
    for (na, ca), (nb, cb) in zip(a, b):
        np.testing.assert_array_equal(na, nb)
        np.testing.assert_array_equal(ca, cb)
    assert not np.array_equal(a[0][0], c[0][0])


def test_start_batch_gives_the_skipped_stream(tiny_prepared):
    """A resumed run starts the stream at a batch: the batches must be those of the whole stream
    (speech and noise order, extra-source draws, augmentation and mixing seeds)."""
    from tinyse_tf.data.augment import Augmentation

    speech, noise = tiny_prepared.split("train")

    def stream(start):
        return mixture_dataset(speech, noise, clip_seconds=0.5, batch_size=4, seed=3,
                               extra=(speech, noise, 0.5), start_batch=start,
                               augmentation=Augmentation(eq_prob=0.5, bandlimit_prob=0.5))

    whole = _batches(stream(0), 7)
    for (a, b), (c, d) in zip(whole[4:], _batches(stream(4), 3)):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    with pytest.raises(ValueError, match="start_batch"):
        stream(-1)


def test_every_utterance_once_per_pass_and_passes_differ(tagged):
    speech, noise = tagged.split("train")
    assert len(speech.files) == 4 and speech.utterances == 12
    ds = mixture_dataset(speech, noise, clip_seconds=0.5, batch_size=12, seed=0)
    (_, first), (_, second) = _batches(ds, 2)
    lengths = sorted(tag_length(k) for k in range(12))
    assert sorted(support_length(c) for c in first) == lengths
    assert sorted(support_length(c) for c in second) == lengths
    assert [support_length(c) for c in first] != [support_length(c) for c in second]


def test_single_pass_is_one_example_per_file_in_storage_order(tiny_prepared, tagged):
    ds = mixture_dataset(*tiny_prepared.split("test"), clip_seconds=0.5, batch_size=2,
                         repeat=False)
    assert [int(n.shape[0]) for n, _ in ds] == [2, 1]  # 3 test files, last batch partial
    speech, noise = tagged.split("valid")
    ds = mixture_dataset(speech, noise, clip_seconds=0.5, batch_size=5, repeat=False)
    stored = [n for lengths in speech.lengths for n in lengths]
    assert [support_length(c) for _, clean in ds for c in clean.numpy()] == stored


def test_pads_short_speech_and_loops_short_noise(tmp_path):
    corpus = tagged_corpus(tmp_path, n_speech=1, noise_lengths=(4000,))
    data = prepare_corpus(corpus, tmp_path / "d", progress=False)
    noisy, clean = _batches(mixture_dataset(*data.split("train"), clip_seconds=1.0,
                                            batch_size=4, seed=3), 1)[0]
    for n, c in zip(noisy, clean):
        support = np.nonzero(c)[0]
        assert len(support) == tag_length(0) == support[-1] - support[0] + 1  # one padded block
        residual = n - c
        np.testing.assert_allclose(residual[:-4000], residual[4000:], atol=1e-6)  # looped


def test_workers_read_disjoint_shards(tagged):
    """Fake input contexts as MultiWorkerMirroredStrategy gives each worker: the workers' speech
    is disjoint, together it is all of it, and their random crops and SNRs differ."""
    from tinyse_tf._tf import tf

    speech, noise = tagged.split("valid")
    seen = []
    for worker in (0, 1):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=worker,
                                             num_replicas_in_sync=2)
        ds = mixture_dataset(speech, noise, clip_seconds=0.5, batch_size=4, repeat=False,
                             input_context=context)
        seen.append({support_length(c) for _, clean in ds for c in clean.numpy()})
        policy = ds.options().experimental_distribute.auto_shard_policy
        assert policy == tf.data.experimental.AutoShardPolicy.OFF  # already sharded
    assert len(seen[0]) == len(seen[1]) == 6 and not seen[0] & seen[1]
    assert seen[0] | seen[1] == {tag_length(k) for k in range(12)}

    # More workers than shards: every worker streams all of them, each with its own draws.
    first = []
    for worker in (0, 1):
        context = tf.distribute.InputContext(8, worker, 8)
        first.append(_batches(mixture_dataset(speech, noise, clip_seconds=0.5, batch_size=12,
                                              seed=0, input_context=context), 1)[0])
    assert sorted(map(support_length, first[0][1])) == sorted(map(support_length, first[1][1]))
    assert not np.array_equal(first[0][0], first[1][0])


_WORKER = """
import json, sys
from tinyse_tf.data import load_prepared, mixture_dataset, worker_input_context
from tinyse_tf.training import make_strategy
sys.path.insert(0, sys.argv[2])
from _corpora import support_length
context = worker_input_context(make_strategy("multiworker"))
ds = mixture_dataset(*load_prepared(sys.argv[1]).split("valid"), clip_seconds=0.5, batch_size=4,
                     repeat=False, input_context=context)
print(json.dumps({"context": [context.num_input_pipelines, context.input_pipeline_id],
                  "lengths": [support_length(c) for _, clean in ds for c in clean.numpy()]}))
"""


def test_two_real_workers_stream_disjoint_speech(tagged):
    """MultiWorkerMirroredStrategy on loopback: the contexts the recipe derives from it."""
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = [subprocess.Popen(
        [sys.executable, "-c", _WORKER, str(tagged.root), str(Path(__file__).parent)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
             "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})})
        for i in range(2)]
    try:
        results = []
        for p in procs:
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, err[-2000:]
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            p.kill()
    assert [r["context"] for r in results] == [[2, 0], [2, 1]]
    first, second = (set(r["lengths"]) for r in results)
    assert len(first) == len(second) == 6 and not first & second


def test_worker_input_context_of_a_strategy():
    class Resolver:
        def __init__(self, task_type, task_id, cluster):
            self.task_type, self.task_id, self._cluster = task_type, task_id, cluster

        def cluster_spec(self):
            return SimpleNamespace(as_dict=lambda: self._cluster)

    def context(task_type, task_id, cluster):
        strategy = SimpleNamespace(cluster_resolver=Resolver(task_type, task_id, cluster),
                                   num_replicas_in_sync=3)
        c = worker_input_context(strategy)
        return None if c is None else (c.num_input_pipelines, c.input_pipeline_id)

    three = {"worker": ["a:1", "b:1", "c:1"]}
    assert [context("worker", i, three) for i in range(3)] == [(3, 0), (3, 1), (3, 2)]
    with_chief = {"chief": ["a:1"], "worker": ["b:1", "c:1"]}
    assert context("chief", 0, with_chief) == (3, 0)
    assert context("worker", 1, with_chief) == (3, 2)
    assert context("worker", 0, {"worker": ["a:1"]}) is None
    assert worker_input_context(SimpleNamespace()) is None  # default strategy


def test_file_lists_are_refused_with_a_fix(tiny_corpus):
    with pytest.raises(TypeError, match="prepare_corpus"):
        mixture_dataset(*tiny_corpus.split("train"))


def test_benchmark_measure_pipeline(tiny_prepared):
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "data_pipeline.py"
    spec = importlib.util.spec_from_file_location("data_pipeline_bench", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    ds = mixture_dataset(*tiny_prepared.split("train"), clip_seconds=0.25, batch_size=2)
    result = bench.measure_pipeline(ds, n_batches=3, warmup=1)
    assert result["examples"] == 6 and result["batch_shape"] == [2, 4000]
    assert result["examples_per_s"] > 0
