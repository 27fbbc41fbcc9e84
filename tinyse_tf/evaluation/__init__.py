"""Evaluation of enhanced speech: per-clip metrics, parallel file runner, reports and plots.

Light by design: numpy/scipy at import, metric libraries (pesq, pystoi, mir_eval, speechmos)
imported on first use, never TensorFlow, so metrics can run in worker processes.

    records = evaluate_files(items, workers=None)     # items: id, snr_label, *_path
    with ScoringPool() as pool:                       # one pool for several calls
        rows = {name: evaluate_files(items_of[name], pool=pool) for name in items_of}
    write_records_csv(records, "student.csv")
    write_report({"teacher": rec_t, "two-step KD": rec_s}, "reports/run1")
"""
from tinyse_tf.evaluation.metrics import (DEFAULT_METRICS, METRIC_KEYS, METRIC_NAMES,
                                          compute_metrics, dnsmos, estoi, metric_keys, pesq_wb,
                                          sdr, si_sdr)
from tinyse_tf.evaluation.plots import plot_gain_vs_snr, plot_spectrograms
from tinyse_tf.evaluation.report import read_report, size_table, table3, write_report
from tinyse_tf.evaluation.runner import (ScoringPool, evaluate_files, evaluate_item, summarize,
                                         write_records_csv)

__all__ = [
    "DEFAULT_METRICS", "METRIC_KEYS", "METRIC_NAMES",
    "si_sdr", "sdr", "pesq_wb", "estoi", "dnsmos", "compute_metrics", "metric_keys",
    "evaluate_files", "evaluate_item", "ScoringPool", "summarize", "write_records_csv",
    "write_report", "read_report", "size_table", "table3",
    "plot_gain_vs_snr", "plot_spectrograms",
]
