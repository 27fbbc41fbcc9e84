"""Recipe configuration: one dataclass and the ``smoke`` / ``demo`` / ``paper`` presets."""
import dataclasses


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
    teacher: str = "teacher"
    student: str = "student"
    norm: str = "frame_ln"  # bounded, so the students export to int8; the paper preset uses cln
    teacher_epochs: int = 10
    student_epochs: int = 8
    step1_epochs: int = 2
    one_step_gamma: float = 0.5
    kd_granularity: str = "tf"
    test_clips: int = 12  # test utterances (each remixed at every test SNR)
    test_clip_seconds: float = 4.0
    test_snrs: tuple = (-5, 0, 5)
    metrics: tuple = ("si_sdr", "sdr", "pesq", "estoi", "dnsmos")
    int8: tuple = ("ptq", "qat")  # int8 streaming files to export and evaluate
    qat_steps: int = 100  # QAT fine-tuning steps (batches of the training stream)
    seed: int = 0

    def __post_init__(self):
        if not 0 < self.step1_epochs < self.student_epochs:
            raise ValueError(f"step1_epochs must lie in (0, student_epochs={self.student_epochs}), "
                             f"got {self.step1_epochs}")
        for field in ("batch_size", "steps_per_epoch", "teacher_epochs", "test_clips"):
            if getattr(self, field) <= 0:
                raise ValueError(f"{field} must be positive, got {getattr(self, field)}")


PRESETS = {
    # Seconds to a couple of minutes on 2 CPU cores; run by CI.
    "smoke": RecipeConfig(corpus_size="smoke", clip_seconds=1.0, batch_size=4, steps_per_epoch=3,
                          validation_steps=1, teacher_epochs=2, student_epochs=4, step1_epochs=1,
                          test_clips=2, test_clip_seconds=2.0, qat_steps=3,
                          metrics=("si_sdr", "sdr", "pesq", "estoi")),
    # The default: the whole method on the built-in corpus in under 30 minutes on 2 CPU cores.
    "demo": RecipeConfig(),
    # The paper's schedule (METHOD.md section 4): for a GPU and DNS Challenge folders.
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
