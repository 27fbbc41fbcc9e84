// The harness's clock and memory report: the host (Linux, g++) or a bare-metal Cortex-M (QEMU's
// MPS2 / MPS3 boards, semihosting for output; startup_cortex_m.c sets the machine up).
#ifndef TINYSE_PLATFORM_H_
#define TINYSE_PLATFORM_H_

#include <cstdint>
#include <cstdio>

#if defined(__arm__)
// SysTick: in the core of every Cortex-M, counts down at the processor clock. Under QEMU with
// `-icount shift=0` virtual time advances one nanosecond per instruction, so its ticks count
// instructions / (1e9 / board clock); platform_print_calibration() measures the ratio.
#define TINYSE_SYST_CSR (*reinterpret_cast<volatile uint32_t*>(0xE000E010u))
#define TINYSE_SYST_RVR (*reinterpret_cast<volatile uint32_t*>(0xE000E014u))
#define TINYSE_SYST_CVR (*reinterpret_cast<volatile uint32_t*>(0xE000E018u))
extern "C" uint32_t tinyse_stack_used_bytes(void);  // startup_cortex_m.c
extern "C" uint32_t tinyse_heap_used_bytes(void);

inline void platform_init() {
  TINYSE_SYST_RVR = 0x00FFFFFFu;
  TINYSE_SYST_CVR = 0;
  TINYSE_SYST_CSR = 5;  // enable, processor clock, no interrupt
}
// Elapsed ticks as an up-counter: differences are right modulo 2^24 (a hop takes far fewer).
inline uint32_t platform_time() { return (0x00FFFFFFu - TINYSE_SYST_CVR) & 0x00FFFFFFu; }
inline const char* platform_time_unit() { return "systick"; }
inline uint32_t platform_elapsed(uint32_t t0, uint32_t t1) { return (t1 - t0) & 0x00FFFFFFu; }

// A loop of exactly 2 instructions per iteration (subs + bne), 2,000,000 instructions in all.
inline void platform_print_calibration() {
  constexpr uint32_t kIterations = 1000000;
  uint32_t n = kIterations;
  uint32_t t0 = platform_time();
  __asm__ volatile("1: subs %0, %0, #1\n bne 1b\n" : "+r"(n) : : "cc");
  uint32_t t1 = platform_time();
  std::printf("calibration instructions=%lu ticks=%lu\n", 2ul * kIterations,
              (unsigned long)platform_elapsed(t0, t1));
}
inline void platform_print_memory() {
  std::printf("stack_used %lu\nheap_used %lu\n", (unsigned long)tinyse_stack_used_bytes(),
              (unsigned long)tinyse_heap_used_bytes());
}
#else
#include <ctime>
inline void platform_init() {}
inline uint32_t platform_time() {  // nanoseconds, modulo 2^32 (a hop takes far fewer)
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint32_t>(ts.tv_sec * 1000000000ull + ts.tv_nsec);
}
inline const char* platform_time_unit() { return "ns"; }
inline uint32_t platform_elapsed(uint32_t t0, uint32_t t1) { return t1 - t0; }
inline void platform_print_calibration() {}
inline void platform_print_memory() {}
#endif

#endif  // TINYSE_PLATFORM_H_
