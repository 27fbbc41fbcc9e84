/* Bare-metal start-up for the harness on QEMU's Cortex-M boards (MPS2 AN386 / AN500, MPS3
 * AN547): vector table, reset handler (FPU on, .data copied, .bss cleared, stack painted for the
 * high-water mark, semihosting opened, C++ constructors run, main, exit), and the few C/C++
 * runtime hooks that -nostartfiles leaves out. Linked with --specs=rdimon.specs (newlib's
 * semihosting: printf goes to QEMU's stdout, exit() ends QEMU with main's status). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, __stack_bottom, __stack_top;
extern char end; /* first byte of the heap (newlib's _sbrk grows it from here) */
extern int main(void);
extern void initialise_monitor_handles(void);
extern void __libc_init_array(void);
extern void *sbrk(ptrdiff_t increment); /* newlib; <unistd.h> declares it only outside strict C */

#define STACK_PAINT 0xA5A5A5A5u

void Reset_Handler(void) {
  /* Full access to the coprocessors CP10 and CP11 (the FPU; M55: also MVE). */
  *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
  __asm__ volatile("dsb\n isb" ::: "memory");
  for (uint32_t *src = &_sidata, *dst = &_sdata; dst < &_edata;) *dst++ = *src++;
  for (uint32_t *dst = &_sbss; dst < &_ebss;) *dst++ = 0;
  uint32_t *sp;
  __asm__ volatile("mov %0, sp" : "=r"(sp));
  for (uint32_t *p = &__stack_bottom; p < sp - 16;) *p++ = STACK_PAINT;
  initialise_monitor_handles();
  __libc_init_array();
  exit(main());
}

/* Bytes of the stack region ever written: from the top down to the lowest unpainted word. */
uint32_t tinyse_stack_used_bytes(void) {
  uint32_t *p = &__stack_bottom;
  while (p < &__stack_top && *p == STACK_PAINT) ++p;
  return (uint32_t)((char *)&__stack_top - (char *)p);
}

uint32_t tinyse_heap_used_bytes(void) { return (uint32_t)((char *)sbrk(0) - &end); }

/* Any fault or unexpected interrupt: say so on the semihosting console and stop QEMU. */
void Default_Handler(void) {
  static const char kMessage[] = "error: CPU fault or unexpected interrupt\n";
  write(2, kMessage, sizeof(kMessage) - 1);
  _exit(3);
}

__attribute__((section(".isr_vector"), used)) void (*const g_vectors[16])(void) = {
    (void (*)(void))&__stack_top, Reset_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, 0, 0, 0, 0, Default_Handler,
    Default_Handler, 0, Default_Handler, Default_Handler};

/* -nostartfiles drops crti/crtn and crtbegin: __libc_init_array calls _init / _fini, and C++
 * function-local statics register their destructors with __cxa_atexit(..., &__dso_handle). */
void _init(void) {}
void _fini(void) {}
void *__dso_handle = 0;
