"""Typed CRUSE configuration and the named presets (docs/DESIGN.md, A.2)."""
import dataclasses

from tinyse_tf.constants import N_MELS

NORMS = ("cln", "frame_ln", "batch", "none")


@dataclasses.dataclass(frozen=True)
class CruseConfig:
    """Architecture of one CRUSE model.

    Attributes:
        channels: output channels of the 4 encoder blocks; the decoder mirrors them.
        gru_groups: parallel GRU groups in the bottleneck; GRU width = channels[-1] * 5.
        norm: ``"cln"`` causal cumulative layer norm (paper; carries running sums in streaming),
            ``"frame_ln"`` per-frame layer norm over (freq, channels) (stateless and bounded, the
            int8-friendly choice), ``"batch"`` batch norm (folded into the convs by the TFLite
            converter), or ``"none"``.
        leaky_alpha: negative slope of the LeakyReLU activations.
        n_mels: mel bands of the input features and of the output mask.
    """

    channels: tuple = (8, 16, 32, 32)
    gru_groups: int = 4
    norm: str = "cln"
    leaky_alpha: float = 0.2
    n_mels: int = N_MELS

    def __post_init__(self):
        if len(self.channels) != 4 or any(int(c) <= 0 for c in self.channels):
            raise ValueError(f"channels must be 4 positive ints, got {self.channels!r}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if self.n_mels % 16:
            raise ValueError(f"n_mels must be divisible by 16 (4 stride-2 blocks), got {self.n_mels}")
        if self.gru_units % self.gru_groups:
            raise ValueError(f"GRU width {self.gru_units} is not divisible by {self.gru_groups} groups")
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))

    @property
    def bottleneck_freq(self) -> int:
        """Frequency size after the encoder (80 -> 5)."""
        return self.n_mels // 16

    @property
    def gru_units(self) -> int:
        """Total GRU width, C_L * 5 (teacher 960, student 160)."""
        return self.channels[-1] * self.bottleneck_freq

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "CruseConfig":
        return cls(**{**d, "channels": tuple(d["channels"])})


PRESETS = {
    "teacher": CruseConfig(channels=(32, 64, 128, 192)),
    "student": CruseConfig(channels=(8, 16, 32, 32)),
    "student_30k": CruseConfig(channels=(8, 16, 16, 24)),
    "student_240k": CruseConfig(channels=(16, 32, 64, 64)),
    "student_350k": CruseConfig(channels=(16, 32, 64, 80)),
}


def get_config(name_or_config, **overrides) -> CruseConfig:
    """A preset by name (``teacher``, ``student``, ``student_30k``, ``student_240k``,
    ``student_350k``) or a ``CruseConfig``, with field overrides (e.g. ``norm="frame_ln"``)."""
    if isinstance(name_or_config, CruseConfig):
        cfg = name_or_config
    elif name_or_config in PRESETS:
        cfg = PRESETS[name_or_config]
    else:
        raise ValueError(f"unknown model preset {name_or_config!r}; choose one of {sorted(PRESETS)}")
    return dataclasses.replace(cfg, **overrides) if overrides else cfg


#: Norms whose streaming graph is bounded and so can be quantized to int8.
INT8_NORMS = ("frame_ln", "batch", "none")


class Int8ExportError(ValueError):
    """The model cannot be exported as a full-int8 streaming graph (one-line reason)."""


def check_int8_exportable(config: CruseConfig) -> None:
    """Raise ``Int8ExportError`` if a model with this ``CruseConfig`` cannot become int8."""
    if config.norm not in INT8_NORMS:
        raise Int8ExportError(
            f"int8 export refused: norm={config.norm!r} (cumulative layer norm) carries running "
            "sums that grow without bound over a stream and cannot be held in a fixed int8 "
            "range; train the model with norm='frame_ln' (per-frame layer norm, recommended) or "
            "norm='batch' (folded into the convs), or export it as float32 only (int8=())")
