"""Signal constants shared by features, data, models and export (docs/DESIGN.md, A.1)."""
SAMPLE_RATE = 16000
N_FFT = 512  # 32 ms frames
HOP = 256  # 16 ms hop, 50 % overlap
N_BINS = N_FFT // 2 + 1  # 257 linear bins
N_MELS = 80
MEL_FMIN = 50.0
MEL_FMAX = 8000.0
COMPRESSION = 0.3  # power-law compression of the mel magnitudes
