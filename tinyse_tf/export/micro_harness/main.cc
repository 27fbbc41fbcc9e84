// tinyse_tf firmware harness: the whole 16 ms hop on the device, as docs/MICRO.md describes it.
//
// Streams the recording in tinyse_input.h hop by hop: window + FFT + mel features (float, the
// exported tables), quantize, TFLM invoke, states fed back (through a staging buffer), mask to
// linear gains, inverse FFT + overlap-add. Prints, per hop, the time of the front end and of the
// model and the int8 features, int8 mask and enhanced int16 samples it computed, so a PC can
// check them against the Python TFLM interpreter (tinyse_tf.export.firmware). Written by
// `tinyse export --target micro --firmware DIR`; built by the Makefile beside it.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "platform.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tinyse_input.h"
#include "tinyse_model.h"
#include "kiss_fftr.h"  // kissfft, the FFT library TFLM's tree carries (patched to be C++)

namespace {

namespace m = tinyse_model;
constexpr int kFft = m::kFrameLength, kHop = m::kHopLength, kBins = m::kBins, kMels = m::kMels;

alignas(16) uint8_t g_arena[m::kArenaBytes];
int8_t g_staging[m::kStateBytesTotal];
float g_frame[kFft];         // the last 512 input samples
float g_fft_in[kFft];        // windowed frame; later the inverse FFT's output
kiss_fft_cpx g_spec[kBins];  // X[k]
float g_tail[kFft - kHop];   // overlap-add tail
float g_features[kMels], g_mask[kMels];
// kissfft keeps its twiddles in caller-given memory (no malloc): 2 configs of a 512-point FFT
// (5,408 bytes each on a 64-bit host, less with 32-bit pointers).
alignas(8) uint8_t g_fft_memory[2][5632];

// Steps 1-4 of docs/MICRO.md: frame, window, FFT, mel, compress; features quantized into `in`.
void front_end(kiss_fftr_cfg fft, const int16_t* hop, int8_t* in) {
  std::memmove(g_frame, g_frame + kHop, sizeof(float) * (kFft - kHop));
  for (int i = 0; i < kHop; ++i) g_frame[kFft - kHop + i] = hop[i] * (1.0f / 32768.0f);
  for (int i = 0; i < kFft; ++i) g_fft_in[i] = g_frame[i] * m::kWindow[i];
  kiss_fftr(fft, g_fft_in, g_spec);
  for (int b = 0; b < kMels; ++b) {
    float mel = 0.0f;
    for (int j = 0; j < m::kMelLength[b]; ++j) {
      const kiss_fft_cpx& x = g_spec[m::kMelStart[b] + j];
      mel += m::kMelWeights[m::kMelOffset[b] + j] * sqrtf(x.r * x.r + x.i * x.i);
    }
    g_features[b] = powf(mel > m::kMelFloor ? mel : m::kMelFloor, m::kCompression);
    long q = lrintf(g_features[b] / m::kFeaturesScale) + m::kFeaturesZeroPoint;
    in[b] = static_cast<int8_t>(q < -128 ? -128 : q > 127 ? 127 : q);
  }
}

// Steps 6-7: mask to linear gains, inverse FFT, window, overlap-add: 256 samples out.
void back_end(kiss_fftr_cfg ifft, const int8_t* mask, int16_t* out) {
  for (int b = 0; b < kMels; ++b) g_mask[b] = m::kMaskScale * (mask[b] - m::kMaskZeroPoint);
  for (int k = 0; k < kBins; ++k) {
    float gain = 0.0f;
    for (int j = 0; j < m::kMaskLength[k]; ++j)
      gain += m::kMaskWeights[m::kMaskOffset[k] + j] * g_mask[m::kMaskStart[k] + j];
    g_spec[k].r *= gain;
    g_spec[k].i *= gain;
  }
  kiss_fftri(ifft, g_spec, g_fft_in);  // unnormalised: divide by the FFT length
  for (int i = 0; i < kFft; ++i) g_fft_in[i] *= m::kWindow[i] * (1.0f / kFft);
  for (int i = 0; i < kHop; ++i) {
    float y = (g_fft_in[i] + g_tail[i]) * 32768.0f;
    long s = lrintf(y);
    out[i] = static_cast<int16_t>(s < -32768 ? -32768 : s > 32767 ? 32767 : s);
  }
  std::memcpy(g_tail, g_fft_in + kHop, sizeof(float) * (kFft - kHop));
}

// Step 8: every state output -> staging buffer -> its state input (the planner may overlap them).
void feed_back_states(tflite::MicroInterpreter& interpreter) {
  int offset = 0;
  for (int i = 0; i < m::kStateCount; ++i) {
    std::memcpy(g_staging + offset, interpreter.output(m::kStateOutIndex[i])->data.int8,
                m::kStateBytes[i]);
    offset += m::kStateBytes[i];
  }
  offset = 0;
  for (int i = 0; i < m::kStateCount; ++i) {
    std::memcpy(interpreter.input(m::kStateInIndex[i])->data.int8, g_staging + offset,
                m::kStateBytes[i]);
    offset += m::kStateBytes[i];
  }
}

// One line of hex: " <tag>:" then the bytes (big-endian per element for int16).
char* put_hex(char* p, const char* tag, const uint8_t* bytes, int count, int width) {
  static const char kDigits[] = "0123456789abcdef";
  *p++ = ' ';
  while (*tag) *p++ = *tag++;
  *p++ = ':';
  for (int i = 0; i < count; ++i)
    for (int w = width - 1; w >= 0; --w) {
      uint8_t b = bytes[i * width + w];  // little-endian memory, printed most significant first
      *p++ = kDigits[b >> 4];
      *p++ = kDigits[b & 15];
    }
  return p;
}

}  // namespace

int main() {
  platform_init();
  std::printf("tinyse_harness model=%s target=%s hops=%d arena_bytes=%d time_unit=%s\n",
              m::kName, TINYSE_TARGET, kInputHops, m::kArenaBytes, platform_time_unit());
  platform_print_calibration();

  static m::OpResolver resolver;
  if (m::RegisterOps(resolver) != kTfLiteOk) {
    std::printf("error: registering the operators failed\n");
    return 1;
  }
  static tflite::MicroInterpreter interpreter(tflite::GetModel(m::kModelData), resolver, g_arena,
                                              m::kArenaBytes);
  if (interpreter.AllocateTensors() != kTfLiteOk) {
    std::printf("error: AllocateTensors failed: arena of %d bytes too small?\n", m::kArenaBytes);
    return 1;
  }
  std::printf("arena_used %u\n", static_cast<unsigned>(interpreter.arena_used_bytes()));
  for (int i = 0; i < m::kStateCount; ++i)
    std::memset(interpreter.input(m::kStateInIndex[i])->data.int8, m::kStateZeroPoint[i],
                m::kStateBytes[i]);

  size_t fft_len = sizeof(g_fft_memory[0]), ifft_len = sizeof(g_fft_memory[1]);
  kiss_fftr_cfg fft = kiss_fftr_alloc(kFft, 0, g_fft_memory[0], &fft_len);
  kiss_fftr_cfg ifft = kiss_fftr_alloc(kFft, 1, g_fft_memory[1], &ifft_len);
  if (fft == nullptr || ifft == nullptr) {
    std::printf("error: kissfft needs %u bytes per FFT\n", static_cast<unsigned>(fft_len));
    return 1;
  }

  static char line[64 + 2 * (2 * kMels + 2 * kHop)];
  int8_t* input = interpreter.input(m::kFeaturesIndex)->data.int8;
  for (int t = 0; t < kInputHops; ++t) {
    // Copies: the memory planner may reuse the features input and the mask output for other
    // tensors (the state inputs included) once their last reader has run.
    int8_t features[kMels], mask[kMels];
    int16_t out[kHop];
    uint32_t t0 = platform_time();
    front_end(fft, g_input_audio + t * kHop, features);
    std::memcpy(input, features, kMels);
    uint32_t t1 = platform_time();
    if (interpreter.Invoke() != kTfLiteOk) {
      std::printf("error: Invoke failed at hop %d\n", t);
      return 1;
    }
    std::memcpy(mask, interpreter.output(m::kMaskIndex)->data.int8, kMels);
    uint32_t t2 = platform_time();
    back_end(ifft, mask, out);
    feed_back_states(interpreter);
    uint32_t t3 = platform_time();
    char* p = line + std::sprintf(line, "hop %d %lu %lu %lu", t,
                                  (unsigned long)platform_elapsed(t0, t1),
                                  (unsigned long)platform_elapsed(t1, t2),
                                  (unsigned long)platform_elapsed(t2, t3));
    p = put_hex(p, "F", reinterpret_cast<const uint8_t*>(features), kMels, 1);
    p = put_hex(p, "M", reinterpret_cast<const uint8_t*>(mask), kMels, 1);
    p = put_hex(p, "Y", reinterpret_cast<const uint8_t*>(out), kHop, 2);
    *p++ = '\n';
    *p = '\0';
    std::fputs(line, stdout);
  }
  // the states after the last hop, in state order, as one line: proof they match too
  static char states_line[4 * m::kStateCount + 2 * m::kStateBytesTotal + 1];
  char* p = states_line;
  for (int i = 0; i < m::kStateCount; ++i)
    p = put_hex(p, "S", reinterpret_cast<const uint8_t*>(
                            interpreter.input(m::kStateInIndex[i])->data.int8),
                m::kStateBytes[i], 1);
  *p = '\0';
  std::printf("states%s\n", states_line);
  platform_print_memory();
  std::printf("done\n");
  return 0;
}
