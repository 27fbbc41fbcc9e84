"""Our models against the public tiny enhancers and a classical one, side by side on real
recordings: quality per input SNR, paired differences, and cost.

    pip install -e '.[bench]'   # logmmse (the classical enhancer) and onnx (counts GTCRN's MACs)
    python benchmarks/vs_peers.py --json docs/results/vs_peers.json   # shipped models, full test
    python benchmarks/vs_peers.py runs/x/export/two_step_stream_int8_ptq.tflite \
        runs/x/models/teacher.keras --clips 25        # other models, a random subset of mixtures

Every enhancer gets the same noisy mixtures: by default every recording of ``--speech`` (the
*test* split of ../shared/audio: 25 LibriSpeech speakers) with every recording of ``--noise``
(its 7 test noises) at every ``--snrs`` value (energy SNR over the speech part), 4 s of speech
preceded by ``--lead-in`` 1 s of the noise alone (a classical enhancer estimates the noise from
the first frames, as a device stream that starts before anyone speaks allows); ``--clips N``
draws N random speech/noise pairs instead. Enhancers:

* ``log-MMSE`` (the ``logmmse`` package, its defaults);
* the peers of ``--peers`` (benchmarks/peers.py: GTCRN's streaming ONNX, DTLN's two TFLite
  stages), each run frame by frame as its own repository's streaming script does;
* ours: streaming ``.tflite`` files through ``StreamingEnhancer`` (frame by frame, as a device
  runs them), Keras models (``.keras`` files or the shipped ``teacher``) through
  ``tinyse_tf.enhance``; a shipped name (``student:int8``, ``student:float32`` = bare
  ``student``, ``teacher``) stands for its file. Default: ``student:int8 student:float32
  teacher``.

Prints markdown tables and JSON (stdout or ``--json``): per enhancer and input SNR the mean
improvement over the noisy input in SI-SDR (dB), PESQ-WB and eSTOI (points) with standard
errors over mixtures; its paired per-mixture difference to log-MMSE, GTCRN and DTLN; our
ΔSI-SDR as a share of each peer's; on the full grid (no ``--clips``) its mean ΔSI-SDR per noise
recording at each SNR (``si_sdr_by_noise``; printed for the middle SNR); and its cost:
float/int8 weights stored, multiply-accumulates of its weight layers per second of audio (counted from the files: benchmarks/peers.py,
``tinyse_tf.export.tflite_ops.weight_macs``; Keras models: ``tinyse_tf.macs_per_frame``), and CPU time
per 16 ms of audio on one thread (process time of all calls, our .tflite files' numpy
STFT/mel/mask path included, divided by the 16 ms hops of audio processed).
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

import numpy as np
import peers  # benchmarks/peers.py: the script folder is on sys.path
from machine import emit_json, machine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from tinyse_tf.constants import HOP, SAMPLE_RATE  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared"
METRICS = ("si_sdr", "pesq", "estoi")
LABELS = {"si_sdr": "ΔSI-SDR", "pesq": "ΔPESQ", "estoi": "ΔeSTOI"}
CLASSICAL, GTCRN, DTLN = "log-MMSE", "GTCRN", "DTLN"
REFERENCES = (CLASSICAL, GTCRN, DTLN)
FRAMES_PER_S = SAMPLE_RATE / HOP


def log_mmse():
    """``audio [n] -> [n]`` with the ``logmmse`` package, or SystemExit naming the install."""
    try:
        import logmmse
    except ImportError:
        raise SystemExit("vs_peers.py: error: the classical enhancer needs the logmmse "
                         "package: pip install -e '.[bench]' (or pip install logmmse)") from None
    np.seterr(all="warn")  # logmmse sets numpy to raise on any floating-point warning

    def enhance(audio):
        # float32 in: its float64 path returns a tuple (logmmse 1.5, utils.from_float)
        out = np.asarray(logmmse.logmmse(np.asarray(audio, np.float32), SAMPLE_RATE), np.float32)
        return np.pad(out, (0, max(0, audio.size - out.size)))[:audio.size]

    return enhance


def with_lead_in(pairs_by_snr, seconds):
    """The mixtures with their first ``seconds`` made noise only (the clean signal zeroed there):
    the noise level is unchanged, so the SNR of the speech part stays the one asked for."""
    n = int(seconds * SAMPLE_RATE)
    out = {}
    for snr, pairs in pairs_by_snr.items():
        out[snr] = []
        for noisy, clean in pairs:
            quiet = clean.copy()
            quiet[:n] = 0.0
            out[snr].append((noisy - clean + quiet, quiet))
    return out


class Timed:
    """``enhance`` that adds up the CPU time and the 16 ms hops it was given."""

    def __init__(self, enhance):
        self.enhance, self.seconds, self.hops = enhance, 0.0, 0

    def __call__(self, audio):
        t = time.process_time()
        out = self.enhance(audio)
        self.seconds += time.process_time() - t
        self.hops += -(-audio.size // HOP)
        return out


def mean_se(values):
    values = np.asarray(values, np.float64)
    n = int(np.sum(np.isfinite(values)))
    return {"mean": float(np.nanmean(values)), "se": float(np.nanstd(values, ddof=1) / np.sqrt(n))
            if n > 1 else float("nan"), "n": n}


def run(enhancers, pairs_by_snr, references=REFERENCES, noise_names=None):
    """``{name: {snr: {metric: {"mean", "se", "n"}, "us_per_16ms": float, "vs": {reference:
    {metric: {"mean", "se", "n"}}}}}}``: improvement over the noisy input per mixture
    (``fidelity.score_enhancers``), averaged per SNR; CPU time per 16 ms hop over all SNRs; the
    paired per-mixture difference to each enhancer of ``references`` that ran. With
    ``noise_names`` (the noise of each mixture) also ``"si_sdr_by_noise": {noise: mean}``."""
    from tinyse_tf.export.fidelity import score_enhancers

    names = None if noise_names is None else np.asarray(noise_names)
    timed = {name: Timed(enhance) for name, enhance in enhancers.items()}
    scores = score_enhancers(timed, pairs_by_snr, METRICS)
    out = {}
    for name, per_snr in scores.items():
        us = 1e6 * timed[name].seconds / timed[name].hops
        out[name] = {}
        for snr, deltas in per_snr.items():
            row = {**{m: mean_se(v) for m, v in deltas.items()}, "us_per_16ms": us, "vs": {}}
            if noise_names is not None:
                values = np.asarray(deltas["si_sdr"])
                row["si_sdr_by_noise"] = {noise: float(values[names == noise].mean())
                                          for noise in dict.fromkeys(noise_names)}
            for ref in references:
                if ref in scores and ref != name:
                    row["vs"][ref] = {m: mean_se(np.asarray(v) - np.asarray(scores[ref][snr][m]))
                                      for m, v in deltas.items()}
            out[name][f"{snr:g}"] = row
    return out


def _cell(stat):
    return f"{stat['mean']:+.2f} ± {stat['se']:.2f}"


def quality_table(results, costs) -> str:
    """Markdown: cost and mean improvement over the input per metric and SNR."""
    snrs = list(next(iter(results.values())))
    head = ["enhancer", "weights", "MACs/s", "µs / 16 ms"] + [
        f"{LABELS[m]} {s} dB" for m in METRICS for s in snrs]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, per_snr in results.items():
        cost = costs.get(name, {})
        cells = [f"{cost['weights'] / 1e3:,.1f} k" if cost.get("weights") is not None else "-",
                 f"{cost['macs_per_s'] / 1e6:,.1f} M" if cost.get("macs_per_s") is not None
                 else "-", f"{per_snr[snrs[0]]['us_per_16ms']:.0f}"]
        cells += [f"{per_snr[s][m]['mean']:+.2f}" for m in METRICS for s in snrs]
        lines.append("| " + " | ".join([name, *cells]) + " |")
    return "\n".join(lines)


def paired_table(results, reference) -> str:
    """Markdown: every other enhancer's paired difference to ``reference`` (mean ± s.e.)."""
    snrs = list(next(iter(results.values())))
    head = ["enhancer"] + [f"{LABELS[m]} {s} dB" for m in METRICS for s in snrs]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, per_snr in results.items():
        if reference in per_snr[snrs[0]]["vs"]:
            lines.append("| " + " | ".join(
                [name] + [_cell(per_snr[s]["vs"][reference][m]) for m in METRICS for s in snrs])
                + " |")
    return "\n".join(lines)


def _share(ours: float, peer: float) -> str:
    """``ours`` as a percentage of ``peer``; "n/a" where the peer does not improve (at high input
    SNR every enhancer may lower SI-SDR, and a share of a loss means nothing)."""
    return f"{100 * ours / peer:.0f} %" if peer > 0 else "n/a"


def share_table(results, ours) -> str:
    """Markdown: our ΔSI-SDR as a share of each peer's, per SNR (mean over mean)."""
    snrs = list(next(iter(results.values())))
    peers_run = [p for p in (GTCRN, DTLN) if p in results]
    head = ["enhancer"] + [f"% of {p} {s} dB" for p in peers_run for s in snrs]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in ours:
        cells = [_share(results[name][s]["si_sdr"]["mean"], results[p][s]["si_sdr"]["mean"])
                 for p in peers_run for s in snrs]
        lines.append("| " + " | ".join([name, *cells]) + " |")
    return "\n".join(lines)


def noise_table(results, snr: str) -> str:
    """Markdown: mean ΔSI-SDR per noise recording (columns) at input SNR ``snr`` (a results key)."""
    noises = list(next(iter(results.values()))[snr]["si_sdr_by_noise"])
    lines = ["| enhancer | " + " | ".join(noises) + " |", "|" + "---|" * (len(noises) + 1)]
    for name, per_snr in results.items():
        by_noise = per_snr[snr]["si_sdr_by_noise"]
        lines.append("| " + " | ".join([name] + [f"{by_noise[n]:+.2f}" for n in noises]) + " |")
    return "\n".join(lines)


def our_enhancers(models, parser):
    """``({label: enhance}, {label: cost})`` of the models named on the command line."""
    from tinyse_tf.shipped import resolve

    enhancers, costs = {}, {}
    for item in models:
        given, _, model = item.rpartition("=")  # LABEL=MODEL names the row
        try:
            shipped = None if Path(model).exists() else resolve(model)
        except (ValueError, OSError) as err:
            parser.error(str(err))
        path = Path(shipped or model)
        name, _, kind = model.partition(":")  # a shipped name and its kind, if given
        if shipped is not None:
            kind = kind or ("keras" if path.suffix == ".npz" else
                            "int8" if "int8" in path.name else "float32")
            label = f"ours: {name} {kind}"
        else:
            label = f"ours: {path.stem}"
        label = f"ours: {given}" if given else label
        if label in enhancers:
            parser.error(f"{item}: a second model labelled {label!r}; name them LABEL=MODEL")
        if path.suffix == ".tflite":
            from tinyse_tf.runtime import StreamingEnhancer

            enhancers[label] = StreamingEnhancer(path).enhance  # aligned with its input
            costs[label] = peers.tflite_cost([path], HOP)
        elif path.suffix in (".keras", ".npz") and path.is_file():
            enhancers[label], costs[label] = keras_enhancer(name if shipped else path)
        else:
            parser.error(f"{model}: not a streaming .tflite file, a .keras model or a shipped "
                         "model name (student:int8, student:float32, teacher)")
    return enhancers, costs


def keras_enhancer(model):
    """A Keras model (shipped name or .keras file) as ``enhance`` with its cost."""
    from tinyse_tf import enhance, pretrained
    from tinyse_tf._tf import keras
    from tinyse_tf.models import config_from_model
    from tinyse_tf.export.complexity import macs_per_frame
    from tinyse_tf.models.complexity import count_params

    net = keras.models.load_model(model) if isinstance(model, Path) else pretrained(model)
    cfg = config_from_model(net)
    return (lambda audio: enhance(net, audio),
            {"weights": count_params(cfg), "macs_per_s": int(macs_per_frame(cfg) * FRAMES_PER_S)})


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="*",
                   help="[LABEL=] streaming .tflite files, .keras models or shipped names "
                        "(default: student:int8 student:float32 teacher); the row is 'ours: "
                        "LABEL' (default: the shipped name and kind, or the file's stem)")
    p.add_argument("--against", action="append", default=[], metavar="LABEL",
                   help="also the paired difference of every enhancer to this one of ours (its "
                        "LABEL, e.g. the model it would replace); repeatable")
    p.add_argument("--peers", default=str(SHARED / "peers"),
                   help="folder with gtcrn/ and dtln/ (see benchmarks/peers.py)")
    p.add_argument("--speech", default=str(SHARED / "audio" / "speech" / "test"))
    p.add_argument("--noise", default=str(SHARED / "audio" / "noise" / "test"))
    p.add_argument("--clips", type=int, default=0,
                   help="mixtures per SNR drawn at random (default 0: every speech x every noise)")
    p.add_argument("--snrs", type=float, nargs="+", default=[-5.0, 0.0, 5.0])
    p.add_argument("--seconds", type=float, default=4.0, help="speech per mixture")
    p.add_argument("--lead-in", type=float, default=1.0, help="seconds of noise alone first")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the JSON here instead of stdout")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from tinyse_tf._tf import tf

    # One thread everywhere, so the CPU times compare (LiteRT and onnxruntime are set per model).
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from tinyse_tf.data import list_audio
    from tinyse_tf.export.fidelity import mixtures_by_snr

    try:  # the peers first: without them there is nothing to compare with
        found = {GTCRN: peers.gtcrn(args.peers), DTLN: peers.dtln(args.peers)}
        enhancers = {CLASSICAL: log_mmse(), **found}
        costs = {GTCRN: peers.gtcrn_cost(args.peers), DTLN: peers.dtln_cost(args.peers)}
        checks = {GTCRN: peers.check(args.peers, "gtcrn", enhancers[GTCRN]),
                  DTLN: peers.check(args.peers, "dtln", enhancers[DTLN])}
        speech, noise = list_audio(args.speech), list_audio(args.noise)
    except (OSError, ValueError) as err:
        p.error(str(err))
    except ImportError as err:
        p.error(f"{err}: pip install -e '.[bench]'")
    if not speech or not noise:
        p.error(f"no recordings in {args.speech if not speech else args.noise}")
    ours, our_costs = our_enhancers(args.models or ["student:int8", "student:float32", "teacher"], p)
    enhancers.update(ours)
    costs.update(our_costs)
    sources = (None if args.clips else
               list(itertools.product(range(len(speech)), range(len(noise)))))
    pairs = with_lead_in(mixtures_by_snr(speech, noise, args.snrs, args.clips,
                                         seconds=args.lead_in + args.seconds, seed=args.seed,
                                         sources=sources), args.lead_in)
    print(f"{len(pairs[args.snrs[0]])} mixtures per SNR x {len(args.snrs)} SNRs, "
          f"{len(enhancers)} enhancers", file=sys.stderr)
    for label in args.against:
        if f"ours: {label}" not in ours:
            p.error(f"--against {label}: not the label of one of the models given "
                    f"({', '.join(ours)})")
    references = (*REFERENCES, *(f"ours: {label}" for label in args.against))
    noise_names = None if sources is None else [Path(noise[j]).stem for _, j in sources]
    results = run(enhancers, pairs, references, noise_names)
    tables = {"quality and cost": quality_table(results, costs),
              **{f"paired difference to {ref}": paired_table(results, ref) for ref in references},
              "our ΔSI-SDR as a share of the peers'": share_table(results, list(ours))}
    if noise_names is not None:
        middle = f"{args.snrs[len(args.snrs) // 2]:g}"
        tables[f"ΔSI-SDR per noise recording at {middle} dB"] = noise_table(results, middle)
    report = {"machine": machine(), "date": time.strftime("%Y-%m-%d"),
              "speech": Path(args.speech).name, "noise": Path(args.noise).name,
              "speech_files": len(speech), "noise_files": len(noise),
              "mixtures_per_snr": len(pairs[args.snrs[0]]), "seconds": args.seconds,
              "lead_in_s": args.lead_in, "seed": args.seed, "peer_reference_max_abs_diff": checks,
              "costs": costs, "results": results, "tables": tables}
    for title, text in tables.items():
        print(f"\n{title[0].upper() + title[1:]} (mean ± standard error where paired):\n\n{text}")
    emit_json(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
