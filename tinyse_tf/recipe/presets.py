"""Recipe configuration: one dataclass and the ``smoke`` / ``demo`` / ``paper`` presets."""
import dataclasses

from tinyse_tf.data.augment import PROBABILITIES  # numpy only: no TensorFlow import here
from tinyse_tf.data.mixing import SNR_MEASURES


STUDENT_METHODS = ("baseline", "one_step", "two_step")  # the recipe's students, in training order
INT8_KINDS = ("ptq", "qat")  # post-training quantization, quantization-aware fine-tuning
LR_SCHEDULES = ("constant", "cosine")
KEEP_CHOICES = ("last", "best")


@dataclasses.dataclass(frozen=True)
class RecipeConfig:
    """Everything a two-step KD run depends on; stored in ``<out>/config.json``.

    The three students (baseline, one-step, two-step) get the same initial weights and the same
    total number of steps, ``student_epochs * steps_per_epoch``; the two-step student spends the
    first ``step1_epochs`` of them on KD only.
    """

    corpus_size: str = "default"  # built-in corpus size (tinyse_tf.data.CORPUS_SIZES)
    clip_seconds: float = 2.0
    batch_size: int = 8
    steps_per_epoch: int = 100
    validation_steps: int = 10
    learning_rate: float = 1e-3
    snr_range: tuple = (-5.0, 15.0)
    # How the training and validation mixtures' SNR is measured: "energy" over the clip, or the
    # paper's "loudness" (ITU-R BS.1770 gated LUFS, tinyse_tf.data.loudness). Test sets: energy.
    snr_measure: str = "energy"
    teacher: str = "teacher"
    student: str = "student"
    norm: str = "frame_ln"  # bounded, so the students export to int8; the paper preset uses cln
    teacher_epochs: int = 10
    student_epochs: int = 8
    step1_epochs: int = 2
    one_step_gamma: float = 0.5
    # Which of STUDENT_METHODS to train; the report and export need "baseline" and "two_step"
    # (a KD probe may train fewer and stop after the students). It adds or leaves out stages
    # without changing any, so a run folder may be continued with other students.
    students: tuple = STUDENT_METHODS
    kd_granularity: str = "tf"
    # KD loss options (docs/DESIGN.md, B.4-B.7), passed to Distiller / similarity_kd_loss:
    kd_reduction: str = "mean"  # "mean" over bins and entries, or "sum": the literal (1/b^2)·Σ
    kd_normalize: bool = True  # L2-normalise each Gram row (Tung & Mori 2019)
    kd_layers: tuple = ()  # BLOCK_NAMES to distil; () = Distiller's default (all 9; "mask" for output)
    reset_optimizer: bool = False  # two-step: zero the Adam state at the switch to step 2
    test_clips: int = 12  # test utterances (each remixed at every test SNR)
    test_clip_seconds: float = 4.0
    test_snrs: tuple = (-5, 0, 5)
    metrics: tuple = ("si_sdr", "sdr", "pesq", "estoi", "dnsmos")
    # int8 streaming files to export and evaluate: "ptq" and/or "qat". PTQ only by default: on real
    # recordings it stays within 0.07 dB of float; QAT fine-tunes the weights, so its file moved
    # -0.32..+1.10 dB from its float model (docs/RESULTS.md section 8).
    int8: tuple = ("ptq",)
    qat_steps: int = 100  # QAT fine-tuning steps (batches of the training stream)
    seed: int = 0
    # Training data and schedule (the release preset); the defaults are what the demo always did.
    # With --speech-dir/--noise-dir: the share of training speech clips, and of noise clips, drawn
    # from the built-in corpus instead (0: the folders only). Test: folders only; validation: the
    # folders' speech, half its noise from the built-in validation noises.
    builtin_weight: float = 0.0
    reverb_prob: float = 0.0  # per training example (tinyse_tf.data.augment)
    eq_prob: float = 0.0
    bandlimit_prob: float = 0.0
    noise_speed_prob: float = 0.0  # noise played 0.71-1.41x as fast (tinyse_tf.data.augment)
    noise_mix_prob: float = 0.0  # a second noise added, 0-10 dB weaker (tinyse_tf.data.augment)
    lr_schedule: str = "constant"  # or "cosine": decays to 1/10 over each stage's steps
    # Which weights a stage keeps: "last" epoch, or "best" validation SI-SDR (of the enhanced
    # validation batches, logged as val_si_sdr; epochs of step 1 of two-step KD are not eligible).
    keep: str = "last"

    def __post_init__(self):
        if not 0 < self.step1_epochs < self.student_epochs:
            raise ValueError(f"step1_epochs must lie in (0, student_epochs={self.student_epochs}), "
                             f"got {self.step1_epochs}")
        students = (self.students,) if isinstance(self.students, str) else tuple(self.students)
        if not students or any(m not in STUDENT_METHODS for m in students) \
                or len(set(students)) != len(students):
            raise ValueError(f"students must be distinct names from {', '.join(STUDENT_METHODS)}; "
                             f"got {', '.join(map(str, students)) or 'none'}")
        object.__setattr__(self, "students", tuple(m for m in STUDENT_METHODS if m in students))
        for field in ("batch_size", "steps_per_epoch", "teacher_epochs", "test_clips",
                      "clip_seconds", "learning_rate"):
            if not getattr(self, field) > 0:
                raise ValueError(f"{field} must be positive, got {getattr(self, field)}")
        low, high = self.snr_range
        if not low <= high:  # equal: a fixed SNR
            raise ValueError(f"snr_range must be (low, high) with low <= high, got {self.snr_range}")
        object.__setattr__(self, "snr_range", (float(low), float(high)))
        kinds = (self.int8,) if isinstance(self.int8, str) else tuple(self.int8)
        if any(k not in INT8_KINDS for k in kinds) or len(set(kinds)) != len(kinds):
            raise ValueError(f"int8 must be distinct names from {', '.join(INT8_KINDS)} (none: "
                             f"float32 only); got {', '.join(map(str, kinds))}")
        object.__setattr__(self, "int8", tuple(k for k in INT8_KINDS if k in kinds))
        for field in ("builtin_weight", *PROBABILITIES):
            if not 0.0 <= getattr(self, field) <= 1.0:
                raise ValueError(f"{field} must lie in [0, 1], got {getattr(self, field)}")
        if self.snr_measure not in SNR_MEASURES:
            raise ValueError(f"snr_measure must be one of {SNR_MEASURES}, got "
                             f"{self.snr_measure!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.keep not in KEEP_CHOICES:
            raise ValueError(f"keep must be one of {KEEP_CHOICES}, got {self.keep!r}")
        self._check_kd()

    @property
    def augmented(self) -> bool:
        return max(getattr(self, field) for field in PROBABILITIES) > 0

    def _check_kd(self):
        for field in ("kd_normalize", "reset_optimizer"):
            if not isinstance(getattr(self, field), bool):
                raise ValueError(f"{field} must be true or false, got {getattr(self, field)!r}")
        layers = self.kd_layers
        if layers is None:
            layers = ()
        if isinstance(layers, str) or not isinstance(layers, (tuple, list)):
            raise ValueError(f"kd_layers must be a tuple of block names (empty = all), got {layers!r}")
        # Stored as a tuple (config.json holds a list), so a config read back compares equal.
        object.__setattr__(self, "kd_layers", tuple(layers))
        if (self.kd_reduction, self.kd_layers) == (RecipeConfig.kd_reduction, ()):
            return  # the defaults: valid without importing TensorFlow (the losses and models do)
        from tinyse_tf.losses import REDUCTIONS
        from tinyse_tf.models import BLOCK_NAMES

        if self.kd_reduction not in REDUCTIONS:
            raise ValueError(f"kd_reduction must be one of {REDUCTIONS}, got {self.kd_reduction!r}")
        unknown = [n for n in self.kd_layers if n not in BLOCK_NAMES]
        if unknown or len(set(self.kd_layers)) != len(self.kd_layers):
            raise ValueError(f"kd_layers must be distinct names from {', '.join(BLOCK_NAMES)}; "
                             f"got {', '.join(map(str, self.kd_layers))}")
        if self.kd_granularity == "output" and set(self.kd_layers) - {"mask"}:
            raise ValueError("kd_layers with kd_granularity 'output': only 'mask' has the same "
                             "channel count in teacher and student")
        # Block order, so the same set of layers is the same configuration.
        object.__setattr__(self, "kd_layers", tuple(n for n in BLOCK_NAMES if n in self.kd_layers))


#: Values of fields added after run folders were first written, as those runs behaved: an older
#: ``config.json`` without them is read with these (``open_run``), so the run still resumes.
LEGACY_VALUES = {"kd_reduction": "mean", "kd_normalize": True, "kd_layers": (),
                 "reset_optimizer": False, "builtin_weight": 0.0, "reverb_prob": 0.0,
                 "eq_prob": 0.0, "bandlimit_prob": 0.0, "noise_speed_prob": 0.0,
                 "noise_mix_prob": 0.0, "lr_schedule": "constant", "keep": "last",
                 "snr_measure": "energy", "students": STUDENT_METHODS}


PRESETS = {
    # Seconds to a couple of minutes on 2 CPU cores; run by CI.
    "smoke": RecipeConfig(corpus_size="smoke", clip_seconds=1.0, batch_size=4, steps_per_epoch=3,
                          validation_steps=1, teacher_epochs=2, student_epochs=4, step1_epochs=1,
                          test_clips=2, test_clip_seconds=2.0, qat_steps=3,
                          metrics=("si_sdr", "sdr", "pesq", "estoi")),
    # The default: the whole method on the built-in corpus in about 30 minutes on 2 idle CPU cores
    # (docs/BENCHMARKS.md).
    "demo": RecipeConfig(),
    # The shipped models (tinyse_tf.pretrained): real recordings (--speech-dir/--noise-dir, e.g.
    # LibriSpeech + recorded noise) with a fifth of the clips from the built-in corpus, DNS-style
    # augmentation, cosine learning rate, best validation SI-SDR kept; about 90 minutes on 2 CPU
    # cores (docs/RECIPE.md, docs/models/).
    "release": RecipeConfig(steps_per_epoch=100, validation_steps=30, teacher_epochs=30,
                            student_epochs=40, step1_epochs=10, test_clips=25,
                            builtin_weight=0.2, reverb_prob=0.2, eq_prob=0.3, bandlimit_prob=0.1,
                            lr_schedule="cosine", keep="best"),
    # The flagship campaign (docs/RESULTS.md, "Flagship campaign"): the release data mix with the
    # enlarged real noise, 5x the release teacher's steps and 2.5x its students'; tens of CPU
    # hours, run over several sessions from its checkpoints. The teacher is the 350 k CRUSE and
    # the one-step student is left out, both chosen by measurement (docs/RESULTS.md section 11:
    # teacher learning curves per CPU hour, then a KD probe); --teacher picks another.
    "flagship": RecipeConfig(steps_per_epoch=100, validation_steps=30, teacher_epochs=150,
                             student_epochs=100, step1_epochs=25, test_clips=25,
                             teacher="student_350k", students=("baseline", "two_step"),
                             builtin_weight=0.2, reverb_prob=0.2, eq_prob=0.3, bandlimit_prob=0.1,
                             lr_schedule="cosine", keep="best"),
    # The paper's schedule (docs/DESIGN.md, A.4): for a GPU and DNS Challenge folders.
    "paper": RecipeConfig(clip_seconds=2.0, batch_size=32, steps_per_epoch=5000,
                          validation_steps=100, learning_rate=6e-5, teacher_epochs=100,
                          student_epochs=400, step1_epochs=100, test_clips=150,
                          test_clip_seconds=10.0, norm="cln", qat_steps=5000),
}


def get_preset(name: str, **overrides) -> RecipeConfig:
    """A preset by name with field overrides (``None`` values are ignored)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(PRESETS[name], **overrides)


SPEED_CHOICES = ("auto", "on", "off")
XLA_MIN_STEPS = 200  # compiling a step costs about as much as 100 plain student steps on a CPU


def speed_settings(jit="auto", mixed_precision="auto", steps=None):
    """Resolve the recipe's ``--jit`` / ``--mixed-precision`` (``auto``, ``on``, ``off``).

    ``auto`` picks per device (benchmarks/training_step.py): with a GPU, mixed precision on and
    XLA off (the GRU then runs as cuDNN kernels, which XLA cannot compile). On CPUs only, mixed
    precision off (CPUs emulate float16) and XLA on for the PSA-only stages (the teacher and the
    baseline student) of a schedule of at least ``XLA_MIN_STEPS`` ``steps``: it fuses the many
    small element-wise ops and runs the GRU's grouped matmuls as one dot (2-core Intel Xeon VM,
    benchmarks/training_step.py: student step 1.7x, teacher step 1.25x faster than uncompiled;
    compiling takes seconds), but off for the KD stages (the teacher's forward pass dominates
    them and its wide convolutions run faster on TensorFlow's oneDNN kernels: KD steps 0.147 s
    uncompiled vs 0.170 s XLA). Returns ``{"jit_student": bool, "jit_kd":
    bool, "jit_teacher": bool, "mixed_precision": bool, "device": "gpu"|"cpu"}``.
    """
    for name, value in (("jit", jit), ("mixed_precision", mixed_precision)):
        if value not in SPEED_CHOICES:
            raise ValueError(f"{name} must be one of {SPEED_CHOICES}, got {value!r}")
    from tinyse_tf._tf import tf

    gpu = bool(tf.config.list_physical_devices("GPU"))
    pick = lambda value, auto: auto if value == "auto" else value == "on"  # noqa: E731
    long_enough = steps is None or steps >= XLA_MIN_STEPS
    xla_auto = not gpu and long_enough
    return {"jit_student": pick(jit, xla_auto), "jit_kd": jit == "on",
            "jit_teacher": pick(jit, xla_auto),
            "mixed_precision": pick(mixed_precision, gpu),
            "device": "gpu" if gpu else "cpu"}
