"""PNG figures for evaluation reports, drawn with matplotlib's Agg canvas.

No pyplot: figures are built on ``matplotlib.figure.Figure`` with a ``FigureCanvasAgg`` so plotting
never touches the caller's interactive backend or global state, and works in worker processes.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from tinyse_tf.atomic import atomic_open
from tinyse_tf.evaluation.runner import snr_value
from tinyse_tf.constants import SAMPLE_RATE
from tinyse_tf.evaluation.metrics import METRIC_NAMES


def new_figure(**kwargs):
    """A matplotlib ``Figure`` on the Agg canvas (no display, no global pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, path) -> None:
    """Write ``fig`` as a 120-dpi PNG at ``path``, atomically."""
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120)


def numeric_labels(labels) -> list[tuple[float, str]]:
    """(value, label) for the labels that name an input SNR, sorted by value."""
    return sorted((snr_value(lab), str(lab)) for lab in labels if snr_value(lab) is not None)


def plot_gain_vs_snr(summaries: Mapping[str, Mapping], metric: str, path, side: str = "delta",
                     title: str | None = None) -> bool:
    """Line plot of a metric against input SNR, one line per model.

    Args:
        summaries: {model name: ``summarize(records)``}.
        metric: value key, e.g. "si_sdr", "pesq", "dnsmos_ovrl".
        path: PNG file to write (atomically).
        side: "delta" (improvement over noisy, default), "enhanced" or "noisy".
    Returns:
        True if a figure was written; False when no summary has a numeric SNR label with a finite
        mean for ``metric`` (nothing to plot).
    """
    labels = {lab for s in summaries.values() for lab in s}
    xs = numeric_labels(labels)
    fig = new_figure(figsize=(5.0, 3.6), layout="constrained")
    ax = fig.add_subplot()
    plotted = False
    for name, summary in summaries.items():
        pts = [(x, summary[lab][side][metric]["mean"]) for x, lab in xs
               if lab in summary and metric in summary[lab][side]]
        pts = [(x, y) for x, y in pts if np.isfinite(y)]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=name)
            plotted = True
    if not plotted:
        return False
    prefix = {"delta": "Δ", "enhanced": "", "noisy": "noisy "}[side]
    ax.set_xlabel("input SNR (dB)")
    ax.set_ylabel(prefix + METRIC_NAMES.get(metric, metric))
    ax.set_xticks([x for x, _ in xs])
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title(title or f"{prefix}{METRIC_NAMES.get(metric, metric)} vs input SNR", fontsize="medium")
    save_png(fig, path)
    return True


def log_spectrogram(x, n_fft: int = 512, hop: int = 256, sample_rate: int = SAMPLE_RATE):
    """Log-magnitude STFT (periodic Hann, 32 ms / 16 ms at 16 kHz).

    Shape:
        x: [n] -> (db [n_fft // 2 + 1, frames], times [frames] s, freqs [n_fft // 2 + 1] Hz).
    """
    from scipy.signal import stft

    freqs, times, spec = stft(np.asarray(x, dtype=np.float64), fs=sample_rate, window="hann",
                              nperseg=n_fft, noverlap=n_fft - hop, boundary=None, padded=True)
    return 20.0 * np.log10(np.abs(spec) + 1e-8), times, freqs


def plot_spectrograms(noisy, enhanced, clean, path, sample_rate: int = SAMPLE_RATE,
                      title: str | None = None, dynamic_range_db: float = 80.0) -> None:
    """Three stacked log-magnitude spectrograms (noisy, enhanced, clean) on one colour scale.

    Shape:
        noisy, enhanced, clean: [n] float (lengths may differ slightly).
    """
    specs = [(name, *log_spectrogram(x, sample_rate=sample_rate))
             for name, x in (("noisy", noisy), ("enhanced", enhanced), ("clean", clean))]
    vmax = max(float(db.max()) for _, db, _, _ in specs)
    vmin = vmax - dynamic_range_db
    fig = new_figure(figsize=(8.0, 7.0), layout="constrained")
    axes = fig.subplots(3, 1, sharex=True, sharey=True)
    for ax, (name, db, times, freqs) in zip(axes, specs):
        mesh = ax.pcolormesh(times, freqs / 1000.0, db, vmin=vmin, vmax=vmax, cmap="magma",
                             shading="auto", rasterized=True)
        ax.set_ylabel("kHz")
        ax.set_title(name, fontsize="medium", loc="left")
    axes[-1].set_xlabel("time (s)")
    fig.colorbar(mesh, ax=list(axes), label="dB", shrink=0.8)
    if title:
        fig.suptitle(title)
    save_png(fig, path)
