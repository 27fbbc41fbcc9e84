"""Does ``tinyse adapt`` help on noise the shipped model never saw, and what does it forget?

    python benchmarks/adapt_noise.py --json docs/results/adapt_noise.json     # the 7 test noises
    python benchmarks/adapt_noise.py --minutes 2 --only freesound_dog         # one, shorter budget

For every noise recording of ``--noise-dir`` (default: the test split of ../shared/audio, which no
model trained or was selected on) picked by ``--only`` (default: all): ``tinyse_tf.adapt`` on the
*first half* of the recording (it holds out part of that half itself, for selection and its own
report), then both the shipped student and the adapted model enhance mixtures of the *second
half* with ``--speech-dir`` speech (default: the test split's 25 speakers, never heard by either)
at -5 / 0 / +5 dB, and mixtures of the second half of every *other* noise of the folder at 0 dB
(what adaptation may have cost elsewhere). Scores: improvement over the noisy input in SI-SDR
(dB), PESQ-WB and eSTOI (points), paired clip by clip with the shipped model (mean ± standard
error); the adapted model's exported int8 file against its float model; the adaptation's wall
and CPU time (adapt + export + report, from its ``timings.json``).

``--adapt-speech DIR`` adapts with that speech folder instead of the built-in corpus (to measure
what the choice costs); ``--guard``, ``--gamma``, ``--general-share``, ``--learning-rate`` pass
through to ``adapt`` (how the default guard was chosen: ``--noise-dir`` on training-split noises,
docs/ADAPT.md).
Adaptations are kept under ``--work`` and reused when rerun (resumable).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from machine import emit_json, machine  # benchmarks/machine.py: the script folder is on sys.path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHARED_AUDIO = Path(__file__).resolve().parents[2] / "shared" / "audio"
OWN_METRICS = ("si_sdr", "pesq", "estoi")
OTHER_METRICS = ("si_sdr", "estoi")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--noise-dir", type=Path, default=SHARED_AUDIO / "noise" / "test")
    p.add_argument("--speech-dir", type=Path, default=SHARED_AUDIO / "speech" / "test",
                   help="speech of the scored mixtures")
    p.add_argument("--adapt-speech", type=Path, help="speech folder for adapt (default: built-in)")
    p.add_argument("--only", default="", help="comma-separated noise file stems to adapt to")
    p.add_argument("--minutes", type=float, default=None, help="adapt's budget (its default)")
    p.add_argument("--guard", default=None)
    p.add_argument("--gamma", type=float, default=None)
    p.add_argument("--general-share", type=float, default=None)
    p.add_argument("--learning-rate", type=float, default=None)
    p.add_argument("--clips", type=int, default=8, help="mixtures per noise and SNR")
    p.add_argument("--report-clips", type=int, default=None, help="adapt's own report's clips")
    p.add_argument("--work", type=Path, default=Path("runs/adapt_noise"))
    p.add_argument("--json", help="write the JSON report here")
    return p.parse_args(argv)


def halves(path):
    from tinyse_tf.data import load_audio

    audio = load_audio(path)
    return audio[:len(audio) // 2], audio[len(audio) // 2:]


def adapt_settings(args) -> dict:
    given = {"minutes": args.minutes, "guard": args.guard, "gamma": args.gamma,
             "general_share": args.general_share, "report_clips": args.report_clips,
             "learning_rate": args.learning_rate}
    return {k: v for k, v in given.items() if v is not None}


def main(argv=None):
    args = parse_args(argv)
    import tinyse_tf
    from tinyse_tf._tf import keras
    from tinyse_tf.data import list_audio, write_audio
    from tinyse_tf.evaluation.paired import paired_difference
    from tinyse_tf.export.fidelity import mixtures_by_snr, score_enhancers
    from tinyse_tf.runtime import StreamingEnhancer
    from tinyse_tf.runtime.offline import enhance

    noises = list_audio(args.noise_dir)
    speech = list_audio(args.speech_dir)
    if not noises or not speech:
        raise SystemExit(f"adapt_noise.py: error: no audio in {args.noise_dir} or "
                         f"{args.speech_dir}; give folders of recordings")
    only = [s for s in args.only.split(",") if s]
    chosen = [n for n in noises if not only or n.stem in only]
    parts = {n.stem: halves(n) for n in noises}
    settings = adapt_settings(args)
    tag = "-".join(f"{k}{v}" for k, v in sorted(settings.items()) if k != "report_clips") or "default"
    if args.adapt_speech:
        tag += "-speech"
    # Own noise at every SNR, the others at 0 dB; the same speech draws everywhere.
    sets = {n: mixtures_by_snr(speech, [parts[n][1]], (-5, 0, 5), args.clips, seed=0)
            for n in parts}
    shipped = tinyse_tf.pretrained("student")
    base = lambda a: enhance(shipped, a)  # noqa: E731
    shipped_own = {}
    shipped_other = {n: score_enhancers({"shipped": base}, {0.0: sets[n][0.0]}, OTHER_METRICS)
                     for n in parts}
    results = {}
    for path in chosen:
        name = path.stem
        folder = args.work / name
        write_audio(folder / "noise" / "first_half.wav", parts[name][0], subtype="FLOAT")
        print(f"== {name}: adapting on {len(parts[name][0]) / 16000:.1f} s", flush=True)
        run = tinyse_tf.adapt(folder / "noise", folder / tag, speech=args.adapt_speech, **settings)
        adapted = keras.models.load_model(run.model, compile=False)
        timings = json.loads((run.out / "timings.json").read_text())
        own_enhancers = {"adapted": lambda a, m=adapted: enhance(m, a),
                         "adapted int8": StreamingEnhancer(run.files["int8_ptq"]).enhance}
        if name not in shipped_own:
            shipped_own[name] = score_enhancers({"shipped": base}, sets[name], OWN_METRICS)
        own = {**shipped_own[name], **score_enhancers(own_enhancers, sets[name], OWN_METRICS)}
        others = {}
        for other in parts:
            if other == name:
                continue
            scored = {**shipped_other[other],
                      **score_enhancers({"adapted": own_enhancers["adapted"]},
                                        {0.0: sets[other][0.0]}, OTHER_METRICS)}
            others[other] = paired_difference(scored, "adapted", "shipped")[0.0]
        results[name] = {
            "adapt_seconds": len(parts[name][0]) / 16000, "timings": timings,
            "best": run.report["best"], "split": run.report["split"],
            "vs_shipped": {str(k): v for k, v in paired_difference(own, "adapted", "shipped").items()},
            "int8_vs_float": {str(k): v for k, v in
                              paired_difference(own, "adapted int8", "adapted").items()},
            "shipped_mean": {str(k): {m: float(np.mean(v[m])) for m in v}
                             for k, v in own["shipped"].items()},
            "others": others,
            "load_average_after": os.getloadavg(),  # the machine was shared: 1 / 5 / 15 min
        }
        print(row(name, results[name]), flush=True)
        # What adapt ran with, defaults included (they change between versions).
        effective = json.loads((run.out / "settings.json").read_text())["config"]
        report = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "argv": sys.argv[1:],
                  "settings": settings, "adapt_config": effective, "clips": args.clips,
                  "noises": results,
                  "summary": summary(results)}
        if args.json:  # after every noise, so a long run that is stopped keeps what it did
            emit_json(report, args.json)
    print(table(results), flush=True)
    print(json.dumps(report["summary"], indent=1))
    if not args.json:
        emit_json(report)
    return report


def _fmt(stats):
    return f"{stats['mean']:+.2f} ± {stats['se']:.2f}"


def row(name, r) -> str:
    own = r["vs_shipped"]
    worst = min(r["others"].items(), key=lambda kv: kv[1]["si_sdr"]["mean"])
    mean_other = np.mean([o["si_sdr"]["mean"] for o in r["others"].values()])
    return (f"| {name} | {r['adapt_seconds']:.1f} | "
            + " / ".join(_fmt(own[s]["si_sdr"]) for s in ("-5.0", "0.0", "5.0"))
            + f" | {_fmt(own['0.0']['pesq'])} | {_fmt(own['0.0']['estoi'])} | "
            f"{mean_other:+.2f} (worst {worst[0]} {_fmt(worst[1]['si_sdr'])}) | "
            + " / ".join(f"{r['int8_vs_float'][s]['si_sdr']['mean']:+.2f}"
                         for s in ("-5.0", "0.0", "5.0"))
            + f" | {r['timings']['total']['wall_s'] / 60:.1f} ({r['timings']['total']['cpu_s'] / 60:.1f})"
            f" | {r['best']['epoch']} |")


def table(results) -> str:
    head = ("| noise | s adapted on | ΔSI-SDR vs shipped, dB (-5 / 0 / +5) | ΔPESQ 0 dB | "
            "ΔeSTOI 0 dB (points) | other noises at 0 dB: mean ΔSI-SDR | int8 − float SI-SDR | "
            "min wall (CPU) | epoch kept |\n|---|---|---|---|---|---|---|---|---|")
    return "\n".join([head] + [row(n, r) for n, r in results.items()])


def summary(results) -> dict:
    if not results:
        return {}
    gains = [r["vs_shipped"]["0.0"]["si_sdr"]["mean"] for r in results.values()]
    others = [o["si_sdr"]["mean"] for r in results.values() for o in r["others"].values()]
    per_noise_other = [float(np.mean([o["si_sdr"]["mean"] for o in r["others"].values()]))
                       for r in results.values()]
    int8 = [r["int8_vs_float"][s]["si_sdr"]["mean"] for r in results.values()
            for s in ("-5.0", "0.0", "5.0")]
    walls = [r["timings"]["total"]["wall_s"] for r in results.values()]
    cpus = [r["timings"]["total"]["cpu_s"] for r in results.values()]
    return {"gain_0db_mean": float(np.mean(gains)), "gain_0db_min": float(np.min(gains)),
            "other_mean": float(np.mean(others)), "other_worst_pair": float(np.min(others)),
            "other_worst_noise_mean": float(np.min(per_noise_other)),
            "int8_minus_float_worst": float(np.min(int8)),
            "wall_s_max": float(np.max(walls)), "cpu_s_max": float(np.max(cpus))}


if __name__ == "__main__":
    main()
