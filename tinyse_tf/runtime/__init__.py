"""Running a trained or exported model on audio: the one signal path and frame loop.

::

    offline.enhance(model, audio)          whole signal, TensorFlow: stft -> features -> model
                                           -> mask -> istft (tinyse_tf.features)
    FrameStream(frame_model)               chunks, numpy: hop buffer -> STFT frames -> features
      .process / .flush / .enhance            -> run_frames(frame model) -> masks -> overlap-add
        frame models:
          tflite.TfliteFrameModel          exported .tflite (float32 / int8), CPU or Edge TPU
          keras.KerasFrameModel            Keras single-frame graph (build_streaming_model)
    tflite.StreamingEnhancer(path)         FrameStream(TfliteFrameModel(path))
    contract                               the I/O contract checks, latency constants

``signal``, ``contract`` and ``tflite`` need only numpy (and ai-edge-litert for a .tflite), so a
device runs them without TensorFlow; ``keras`` and ``offline`` import TensorFlow.
"""
from tinyse_tf.runtime.contract import (ALGORITHMIC_LATENCY_SAMPLES, STREAM_DELAY_SAMPLES,
                                        ContractError)
from tinyse_tf.runtime.signal import FrameStream, run_frames, signal_features
from tinyse_tf.runtime.tflite import (EDGETPU_LIBRARY, EdgeTPUUnavailable, StreamingEnhancer,
                                      TfliteFrameModel)

__all__ = ["ALGORITHMIC_LATENCY_SAMPLES", "STREAM_DELAY_SAMPLES", "ContractError", "FrameStream",
           "run_frames", "signal_features", "EDGETPU_LIBRARY", "EdgeTPUUnavailable",
           "StreamingEnhancer", "TfliteFrameModel"]
