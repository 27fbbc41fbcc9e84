"""Per-clip speech-enhancement metrics at 16 kHz (docs/DESIGN.md, A.5).

Every metric takes float arrays of shape [n] (mono, 16 kHz, same length) and returns a float (or a
dict for DNSMOS). Heavy libraries (pesq, pystoi, mir_eval, speechmos/onnxruntime) are imported on
first use, so importing this module is cheap; nothing here imports TensorFlow.

``compute_metrics`` evaluates the noisy input and the enhanced output against the clean reference
and returns the improvement (delta = enhanced - noisy). Each metric is isolated: a failure on one
signal becomes NaN plus an error string.

PESQ and "no utterances detected": P.862's voice activity detector finds no speech in a reference
that is numerically silent (e.g. hundreds of dB below the estimate; an all-zero one is refused
earlier as "silent"), and the ``pesq`` package raises ``pesq.NoUtterancesError``. PESQ is undefined
there, so ``pesq_wb`` returns NaN and warns (:class:`NoUtterancesWarning`), and ``compute_metrics``
records NaN plus ``errors["<side>.pesq"] = "NoUtterancesError: ..."``. That is the only pesq
condition tolerated: every other ``pesq.PesqError`` (buffer shorter than 0.25 s, out of memory,
unknown) and any other exception propagates from ``pesq_wb``.
"""
from __future__ import annotations

import os
import time
import traceback
import warnings
from typing import Mapping, Sequence

import numpy as np

from tinyse_tf.constants import SAMPLE_RATE

#: Metric groups accepted by ``compute_metrics`` and the value keys each one produces.
METRIC_KEYS: Mapping[str, tuple[str, ...]] = {
    "si_sdr": ("si_sdr",),
    "sdr": ("sdr",),
    "pesq": ("pesq",),
    "estoi": ("estoi",),
    "dnsmos": ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl"),
}
DEFAULT_METRICS: tuple[str, ...] = tuple(METRIC_KEYS)
#: Display names (with units) of the value keys, for tables and plots.
METRIC_NAMES: Mapping[str, str] = {
    "si_sdr": "SI-SDR (dB)",
    "sdr": "SDR, BSS-eval (dB)",
    "pesq": "PESQ-WB",
    "estoi": "eSTOI (%)",
    "dnsmos_sig": "DNSMOS SIG",
    "dnsmos_bak": "DNSMOS BAK",
    "dnsmos_ovrl": "DNSMOS OVRL",
}
#: Groups that need the clean reference (DNSMOS is non-intrusive).
INTRUSIVE = frozenset({"si_sdr", "sdr", "pesq", "estoi"})
#: Largest length difference (samples) that ``compute_metrics`` trims silently: one 512-sample
#: STFT frame, the most an STFT/iSTFT round trip may add or drop. Larger differences are errors.
MAX_LENGTH_DIFF = 512


def _as_signal(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{name} must be mono with shape [n], got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or inf")
    return x


def _pair(ref, est) -> tuple[np.ndarray, np.ndarray]:
    ref, est = _as_signal(ref, "ref"), _as_signal(est, "est")
    if ref.shape != est.shape:
        raise ValueError(f"ref and est lengths differ: {ref.shape[0]} vs {est.shape[0]}")
    # Every intrusive metric is undefined (0/0) on a silent signal; libraries fail obscurely there
    # (pesq: "cannot convert float NaN to integer"), so say it plainly.
    if not np.any(ref):
        raise ValueError("reference is silent (all zeros)")
    if not np.any(est):
        raise ValueError("estimate is silent (all zeros)")
    return ref, est


def si_sdr(ref, est) -> float:
    """Scale-invariant SDR in dB (Le Roux et al., "SDR - half-baked or well done?", ICASSP 2019).

    Both signals are made zero-mean; the estimate is projected on the reference,
    ``target = <est, ref> / ||ref||^2 * ref``, and SI-SDR = 10 log10(||target||^2 / ||est - target||^2).
    Written by hand (five lines) rather than taken from a library.

    Shape:
        ref, est: [n] float, same length.
    Returns:
        SI-SDR in dB; 156.5 dB (the float64 floor) when est equals ref up to a gain.
    Raises:
        ValueError: shapes differ, non-finite input, or a silent (all-zero) ref or est.
    """
    ref, est = _pair(ref, est)
    ref = ref - ref.mean()
    est = est - est.mean()
    if not (np.any(ref) and np.any(est)):
        raise ValueError("ref or est is constant: SI-SDR undefined")
    target = (np.dot(est, ref) / np.dot(ref, ref)) * ref
    residual = est - target
    t, r = np.dot(target, target), np.dot(residual, residual)
    # Relative floor: a perfect estimate gives 10 log10(1 / eps) = 156.5 dB at any scale.
    tiny = np.finfo(np.float64).tiny
    return float(10.0 * np.log10((t + tiny) / (r + np.finfo(np.float64).eps * t + tiny)))


def sdr(ref, est) -> float:
    """BSS-eval v3 SDR in dB (Vincent et al. 2006) via ``mir_eval.separation.bss_eval_sources``.

    This is the classic "SDR" (distortion filter of 512 taps, not scale-invariant); report it
    labelled as BSS-eval SDR, next to SI-SDR. It costs O(n log n) FFTs plus a 512x512 solve and is
    the slowest intrusive metric on long clips; it is used exactly as mir_eval implements it.

    Shape:
        ref, est: [n] float, same length.
    Returns:
        SDR in dB.
    Raises:
        ValueError: shapes differ, non-finite input, or a silent ref or est (mir_eval rejects them).
    """
    ref, est = _pair(ref, est)
    from mir_eval.separation import bss_eval_sources

    with warnings.catch_warnings():
        # mir_eval 0.8 flags its separation module as deprecated (removed in 0.9); 0.8.2 is pinned.
        warnings.filterwarnings("ignore", message="(?s).*deprecated", category=FutureWarning)
        sdr_values, _sir, _sar, _perm = bss_eval_sources(ref[np.newaxis], est[np.newaxis],
                                                         compute_permutation=False)
    return float(sdr_values[0])


class NoUtterancesWarning(RuntimeWarning):
    """PESQ found no utterance in the reference; the score is NaN (see the module docstring)."""


def _pesq_wb_or_raise(ref, est) -> float:
    """``pesq_wb`` without the NaN: ``pesq.NoUtterancesError`` propagates like every other error."""
    ref, est = _pair(ref, est)
    from pesq import pesq

    return float(pesq(SAMPLE_RATE, ref, est, "wb"))


def pesq_wb(ref, est) -> float:
    """Wide-band PESQ (ITU-T P.862.2, MOS-LQO, range about 1.04-4.64) via the ``pesq`` package.

    Shape:
        ref, est: [n] float at 16 kHz, same length.
    Returns:
        MOS-LQO; NaN, with a :class:`NoUtterancesWarning`, when PESQ detects no utterance in the
        reference (``pesq.NoUtterancesError``: a numerically silent reference).
    Raises:
        ValueError: bad input (shapes, non-finite, an all-zero ref or est).
        pesq.PesqError: any other pesq failure, e.g. ``BufferTooShortError`` under 0.25 s.
    """
    from pesq import NoUtterancesError

    try:
        return _pesq_wb_or_raise(ref, est)
    except NoUtterancesError as exc:
        warnings.warn(f"PESQ found no utterance in the reference ({error_string(exc)}); "
                      "returning NaN", NoUtterancesWarning, stacklevel=2)
        return float("nan")


def estoi(ref, est) -> float:
    """Extended STOI (Jensen & Taal 2016) in percent (0-100) via ``pystoi`` (``extended=True``).

    pystoi resamples to 10 kHz and removes silent frames internally.

    Shape:
        ref, est: [n] float at 16 kHz, same length.
    """
    ref, est = _pair(ref, est)
    from pystoi import stoi

    return float(100.0 * stoi(ref, est, SAMPLE_RATE, extended=True))


def _dnsmos_input(audio) -> np.ndarray:
    """float32 in [-1, 1]: signals that peak above 1 are scaled down by their peak (a gain
    change, unlike clipping, does not add the distortion DNSMOS SIG would penalise)."""
    audio = _as_signal(audio, "audio")
    peak = float(np.max(np.abs(audio)))
    if peak == 0.0:
        raise ValueError("audio is silent (all zeros)")
    if peak > 1.0:
        audio = audio / peak
    return np.clip(audio, -1.0, 1.0).astype(np.float32)


#: speechmos's DNSMOS model with a one-thread primary session, loaded on first use (per process).
_dnsmos_model = None


def _dnsmos_session(name: str):
    """One of speechmos's DNSMOS ONNX models (``"sig_bak_ovr.onnx"``, ``"model_v8.onnx"``) in an
    onnxruntime session that uses one thread: the runner puts one worker on each core, so more
    threads would oversubscribe them, and a fixed count gives the same bits on every machine
    (speechmos's default, one thread per core, changes BAK in the 8th digit between machines)."""
    import onnxruntime as ort
    from speechmos import dnsmos as speechmos_dnsmos

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    path = os.path.join(os.path.dirname(speechmos_dnsmos.__file__), "dnsmos_models", name)
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def _load_dnsmos():
    global _dnsmos_model
    if _dnsmos_model is None:
        from speechmos.dnsmos import DNSMOS

        model = object.__new__(DNSMOS)  # its __init__ takes no session options
        model.onnx_sess = _dnsmos_session("sig_bak_ovr.onnx")
        _dnsmos_model = model
    return _dnsmos_model


def dnsmos_loaded() -> bool:
    """Whether this process holds a DNSMOS session (onnxruntime does not survive ``fork``)."""
    return _dnsmos_model is not None


def forget_dnsmos() -> None:
    """Drop this process's DNSMOS session (a forked worker then loads its own)."""
    global _dnsmos_model
    _dnsmos_model = None


def dnsmos_scores(model, audio: np.ndarray) -> dict[str, float]:
    """SIG/BAK/OVRL exactly as speechmos's ``DNSMOS.__call__`` computes them, each distinct window
    scored once.

    speechmos tiles a clip shorter than 9.01 s (doubling it until long enough), scores 9.01 s
    windows every second and averages them. In a tiled clip, windows whose starts differ by a
    multiple of the clip's length hold the same samples (a 4 s clip: 7 windows, 4 distinct), so
    each is scored once and its value reused: the same windows, values and mean, in fewer runs.
    P.808 MOS, which speechmos also computes, is not returned, so it is skipped.

    Shape:
        audio: float32 [n] in [-1, 1] at 16 kHz.
    """
    from speechmos.dnsmos import INPUT_LENGTH

    period = len(audio)
    window = int(INPUT_LENGTH * SAMPLE_RATE)
    while len(audio) < window:
        audio = np.append(audio, audio)
    scored, values = {}, []
    for idx in range(int(np.floor(len(audio) / SAMPLE_RATE) - INPUT_LENGTH) + 1):
        start = int(idx * SAMPLE_RATE)
        segment = audio[start: int((idx + INPUT_LENGTH) * SAMPLE_RATE)]
        if len(segment) < window:
            continue
        key = (start % period, len(segment))
        if key not in scored:
            features = np.array(segment).astype("float32")[np.newaxis, :]
            raw = model.onnx_sess.run(None, {"input_1": features})[0][0]
            scored[key] = model.get_polyfit_val(*raw, False)
        values.append(scored[key])
    sig, bak, ovr = zip(*values)
    return {"SIG": float(np.mean(sig)), "BAK": float(np.mean(bak)), "OVRL": float(np.mean(ovr))}


def dnsmos(est) -> dict[str, float]:
    """DNSMOS P.835 (Reddy et al. 2022) of a signal, as ``speechmos.dnsmos.run(audio, 16000)``.

    Non-intrusive (no reference). speechmos scores 9.01 s windows with a 1 s hop and averages them;
    clips shorter than 9.01 s are tiled to that length (``dnsmos_scores`` scores each distinct
    window once). The ONNX session is loaded once per process, on the first call (a few seconds);
    a window costs about 0.6 s of one core on this project's CPU, a 4 s clip 4 windows.

    Shape:
        est: [n] float at 16 kHz; values outside [-1, 1] are scaled down by the peak.
    Returns:
        {"SIG": float, "BAK": float, "OVRL": float}, MOS on a 1-5 scale (speechmos's P.835
        polynomial mapping can land slightly outside it, e.g. BAK 0.97 on rain at 0 dB SNR).
    """
    return dnsmos_scores(_load_dnsmos(), _dnsmos_input(est))


def error_string(exc: BaseException) -> str:
    """``"<ExceptionType>: <message>"`` of ``exc`` on one line (the errors of a metric record)."""
    msg = str(exc).strip() or traceback.format_exception_only(type(exc), exc)[-1].strip()
    return f"{type(exc).__name__}: {msg}"


def _one_group(group: str, clean: np.ndarray, x: np.ndarray) -> dict[str, float]:
    if group == "si_sdr":
        return {"si_sdr": si_sdr(clean, x)}
    if group == "sdr":
        return {"sdr": sdr(clean, x)}
    if group == "pesq":  # NoUtterancesError raises here, so compute_metrics records it
        return {"pesq": _pesq_wb_or_raise(clean, x)}
    if group == "estoi":
        return {"estoi": estoi(clean, x)}
    if group == "dnsmos":
        d = dnsmos(x)
        return {"dnsmos_sig": d["SIG"], "dnsmos_bak": d["BAK"], "dnsmos_ovrl": d["OVRL"]}
    raise ValueError(f"unknown metric {group!r}; choose from {sorted(METRIC_KEYS)}")


def metric_keys(metrics: Sequence[str] = DEFAULT_METRICS) -> list[str]:
    """Value keys produced by the metric groups, e.g. ("dnsmos",) -> ["dnsmos_sig", ...]."""
    unknown = [m for m in metrics if m not in METRIC_KEYS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {sorted(METRIC_KEYS)}")
    return [k for m in metrics for k in METRIC_KEYS[m]]


def align_lengths(*signals, max_diff: int = MAX_LENGTH_DIFF) -> list[np.ndarray]:
    """Trim signals of shape [n_i] to the shortest; raise if lengths differ by more than max_diff."""
    lengths = [np.shape(s)[-1] for s in signals]
    if max(lengths) - min(lengths) > max_diff:
        raise ValueError(f"signal lengths differ by more than {max_diff} samples: {lengths}")
    n = min(lengths)
    return [np.asarray(s)[..., :n] for s in signals]


def empty_result(metrics: Sequence[str] = DEFAULT_METRICS) -> dict:
    """A ``compute_metrics`` result with every value NaN and no errors (filled in by callers)."""
    keys = metric_keys(metrics)
    out = {side: {k: float("nan") for k in keys} for side in ("noisy", "enhanced", "delta")}
    out.update(errors={}, seconds={}, n_samples=0)
    return out


def compute_metrics(clean, noisy, enhanced, metrics: Sequence[str] = DEFAULT_METRICS,
                    noisy_values: Mapping | None = None) -> dict:
    """Metrics of the noisy input and of the enhanced output, and their improvement.

    ``noisy=None`` scores the enhanced signal alone (``noisy`` and ``delta`` come back empty).
    ``noisy_values`` ({key: float}, e.g. the ``noisy`` dict of an earlier result for the same
    clean/noisy pair) skips recomputing the noisy side: when several models are scored on one
    test set, the noisy input's metrics (DNSMOS above all) are computed once.

    Lengths may differ by up to ``MAX_LENGTH_DIFF`` samples (STFT padding); all three are trimmed
    to the shortest. Each metric group runs in isolation: an exception becomes NaN values plus an
    entry in ``errors``; it never propagates.

    Shape:
        clean, noisy, enhanced: [n] float at 16 kHz.
    Returns:
        dict with
          ``noisy``, ``enhanced``, ``delta``: {key: float} for every key of ``metric_keys(metrics)``
            (si_sdr dB, sdr dB, pesq MOS-LQO, estoi %, dnsmos_sig/bak/ovrl MOS); delta = enhanced -
            noisy, NaN when either side is NaN;
          ``errors``: {"noisy.<group>" | "enhanced.<group>": "ExcType: message"};
          ``seconds``: {group: wall time for noisy + enhanced};
          ``n_samples``: int, the evaluated length.
    """
    metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    out = empty_result(metrics)  # validates the names
    if noisy is None:  # enhanced only: no noisy reference, so no improvement either
        out["noisy"], out["delta"] = {}, {}
    signals = [(clean, "clean"), (enhanced, "enhanced")] + ([(noisy, "noisy")] if noisy is not None
                                                              else [])
    try:
        clean, enhanced, *rest = align_lengths(*(_as_signal(s, n) for s, n in signals))
    except Exception as exc:  # the whole file is unusable; every metric is NaN
        out["errors"]["input"] = error_string(exc)
        return out
    out["n_samples"] = int(clean.shape[0])
    if noisy_values and not set(out["noisy"]) <= set(noisy_values):
        noisy_values = None  # scored with fewer metrics before: compute the noisy side again
    sides = ((("noisy", rest[0]),) if rest and not noisy_values else ()) + (("enhanced", enhanced),)
    if noisy_values:
        out["noisy"].update({k: float(noisy_values[k]) for k in out["noisy"]})
    for group in metrics:
        t0 = time.perf_counter()
        for side, x in sides:
            try:
                out[side].update(_one_group(group, clean, x))
            except Exception as exc:
                out["errors"][f"{side}.{group}"] = error_string(exc)
        out["seconds"][group] = time.perf_counter() - t0
    for k in out["delta"]:
        out["delta"][k] = out["enhanced"][k] - out["noisy"][k]
    return out
