/*
 * The AdamW update of train/optimizer/adamw.ts as a native Node-API addon (train/optimizer/adamw-native.ts
 * loads it; docs/fine-tune.md "AdamW engines" tells how to build it).
 *
 * The graph's float32 operations in the graph's order, node for node — the Veltkamp/Dekker + two-sum
 * emulation of its three fused multiply-adds included (split constant 4097) — so that the result is
 * bit for bit the `ort` and `wasm` engines' on all data (subnormals, overflow to NaN, infinities
 * too), hence today's training results and the stored upstream steps (test/train/adamw-engines.test.ts).
 * A real FMA would be cheaper but is not the graph: it rounds differently near the subnormals and
 * where 4097·x overflows. The kernels use only IEEE add, sub, mul, div and sqrt.
 *
 * Compiled with -O3 -ffp-contract=off and without fast-math (binding.gyp): nothing is fused or
 * reassociated (`objdump -d build/Release/bridgetower_adamw.node | grep -c vfmadd` prints 0), so every operation is
 * one IEEE float32 operation, correctly rounded, as in ONNX Runtime and WebAssembly. Subnormals are
 * neither flushed nor treated as zero (each thread clears MXCSR's FTZ/DAZ bits for the duration of
 * the call, as WebAssembly never sets them).
 *
 * It works in place on the callers' Float32Arrays (no copy) over [offset, offset + size), split into
 * contiguous ranges over `threads` threads. The kernel is chosen at run time (AVX-512F, AVX2, or
 * portable C), so one binary runs on any x86-64 and builds on any other architecture.
 */
#define NAPI_VERSION 8
#include <node_api.h>

#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* ADAMW_PORTABLE_ONLY builds what a non-x86 machine builds (a check of that path on x86). */
#if (defined(__x86_64__) || defined(__i386__)) && !defined(ADAMW_PORTABLE_ONLY)
#define ADAMW_X86 1
#include <immintrin.h>
#endif

/* The per-call float32 scalars, in the order train/optimizer/adamw-native.ts packs them. */
typedef struct {
  float b1, c1, b2, c2, eps, neg_step, decay;
} Scalars;
enum { SCALAR_COUNT = 7 };
_Static_assert(sizeof(Scalars) == SCALAR_COUNT * sizeof(float), "Scalars is the packed Float32Array, unpadded");

typedef void (*Kernel)(float *p, const float *g, float *m, float *v, size_t n, const Scalars *s);

/*
 * One element (or vector) of the graph, written once for every kernel over the type V and its
 * operations, so that all kernels perform the same operations in the same order: adamw-step.ts's
 * `halves`, `fma` and update, node for node (the graph and the wasm kernel are built from it; adamw-js.ts states it again).
 * `K` holds the splatted constants: b1, c1, b2, c2, eps, neg_step, decay, split.
 */
#define DEFINE_STEP(NAME, ATTR, V, MUL, ADD, SUB, DIV, SQRT)                                        \
  /* fl(a·c + x) emulated: Veltkamp split of a and c, Dekker product, Knuth two-sum. */           \
  ATTR static inline V NAME##_fma(V a, V c, V x, V split) {                                        \
    const V p = MUL(a, c);                                                                         \
    const V ta = MUL(split, a);                                                                    \
    const V ah = SUB(ta, SUB(ta, a));                                                              \
    const V al = SUB(a, ah);                                                                       \
    const V tc = MUL(split, c);                                                                    \
    const V ch = SUB(tc, SUB(tc, c));                                                              \
    const V cl = SUB(c, ch);                                                                       \
    const V e = ADD(ADD(ADD(SUB(MUL(ah, ch), p), MUL(ah, cl)), MUL(al, ch)), MUL(al, cl));         \
    const V s = ADD(p, x);                                                                         \
    const V bb = SUB(s, p);                                                                        \
    const V se = ADD(SUB(p, SUB(s, bb)), SUB(x, bb));                                              \
    return ADD(s, ADD(e, se));                                                                     \
  }                                                                                                \
  ATTR static inline void NAME##_step(V *p, V g, V *m, V *v, const V *K) {                          \
    const V m_new = NAME##_fma(g, K[1], MUL(*m, K[0]), K[7]);                                      \
    const V v_new = NAME##_fma(MUL(K[3], g), g, MUL(*v, K[2]), K[7]);                              \
    const V denom = ADD(SQRT(v_new), K[4]);                                                        \
    const V updated = ADD(*p, DIV(MUL(K[5], m_new), denom));                                       \
    *p = NAME##_fma(updated, K[6], updated, K[7]);                                                 \
    *m = m_new;                                                                                    \
    *v = v_new;                                                                                    \
  }

/* The split constant 2^12 + 1: halves of 12 significant bits, whose products are exact. */
static const float SPLIT = 4097.0f;

#define F_MUL(a, b) ((a) * (b))
#define F_ADD(a, b) ((a) + (b))
#define F_SUB(a, b) ((a) - (b))
#define F_DIV(a, b) ((a) / (b))
DEFINE_STEP(scalar, , float, F_MUL, F_ADD, F_SUB, F_DIV, sqrtf)

static void adamw_portable(float *p, const float *g, float *m, float *v, size_t n, const Scalars *s) {
  const float K[8] = {s->b1, s->c1, s->b2, s->c2, s->eps, s->neg_step, s->decay, SPLIT};
  for (size_t i = 0; i < n; i++) {
    float pi = p[i], mi = m[i], vi = v[i];
    scalar_step(&pi, g[i], &mi, &vi, K);
    p[i] = pi;
    m[i] = mi;
    v[i] = vi;
  }
}

#ifdef ADAMW_X86
#define AVX2 __attribute__((target("avx2")))
DEFINE_STEP(avx2, AVX2, __m256, _mm256_mul_ps, _mm256_add_ps, _mm256_sub_ps, _mm256_div_ps, _mm256_sqrt_ps)

AVX2 static void adamw_avx2(float *p, const float *g, float *m, float *v, size_t n, const Scalars *s) {
  const __m256 K[8] = {_mm256_set1_ps(s->b1), _mm256_set1_ps(s->c1), _mm256_set1_ps(s->b2), _mm256_set1_ps(s->c2),
                       _mm256_set1_ps(s->eps), _mm256_set1_ps(s->neg_step), _mm256_set1_ps(s->decay), _mm256_set1_ps(SPLIT)};
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 pi = _mm256_loadu_ps(p + i), mi = _mm256_loadu_ps(m + i), vi = _mm256_loadu_ps(v + i);
    avx2_step(&pi, _mm256_loadu_ps(g + i), &mi, &vi, K);
    _mm256_storeu_ps(p + i, pi);
    _mm256_storeu_ps(m + i, mi);
    _mm256_storeu_ps(v + i, vi);
  }
  /* The same operations on the last < 8 elements. */
  adamw_portable(p + i, g + i, m + i, v + i, n - i, s);
}

#define AVX512 __attribute__((target("avx512f")))
DEFINE_STEP(avx512, AVX512, __m512, _mm512_mul_ps, _mm512_add_ps, _mm512_sub_ps, _mm512_div_ps, _mm512_sqrt_ps)

AVX512 static void adamw_avx512(float *p, const float *g, float *m, float *v, size_t n, const Scalars *s) {
  const __m512 K[8] = {_mm512_set1_ps(s->b1), _mm512_set1_ps(s->c1), _mm512_set1_ps(s->b2), _mm512_set1_ps(s->c2),
                       _mm512_set1_ps(s->eps), _mm512_set1_ps(s->neg_step), _mm512_set1_ps(s->decay), _mm512_set1_ps(SPLIT)};
  for (size_t i = 0; i < n; i += 16) {
    /* The last vector is masked: lanes past n are neither read nor written (they compute on zeros). */
    const __mmask16 k = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
    __m512 pi = _mm512_maskz_loadu_ps(k, p + i), mi = _mm512_maskz_loadu_ps(k, m + i), vi = _mm512_maskz_loadu_ps(k, v + i);
    avx512_step(&pi, _mm512_maskz_loadu_ps(k, g + i), &mi, &vi, K);
    _mm512_mask_storeu_ps(p + i, k, pi);
    _mm512_mask_storeu_ps(m + i, k, mi);
    _mm512_mask_storeu_ps(v + i, k, vi);
  }
}
#endif

/* Kernels by name, best first; `available` is decided once, at load. */
typedef struct {
  const char *name;
  Kernel run;
  int available;
} KernelRow;

static KernelRow KERNELS[] = {
#ifdef ADAMW_X86
    {"avx512f", adamw_avx512, 0},
    {"avx2", adamw_avx2, 0},
#endif
    {"portable", adamw_portable, 1},
};
enum { KERNEL_COUNT = sizeof(KERNELS) / sizeof(KERNELS[0]) };

static void detect_kernels(void) {
#ifdef ADAMW_X86
  /* __builtin_cpu_supports also checks that the OS saves the vector registers (XGETBV). */
  __builtin_cpu_init();
  KERNELS[0].available = __builtin_cpu_supports("avx512f");
  KERNELS[1].available = __builtin_cpu_supports("avx2");
#endif
}

/* One thread's share. */
typedef struct {
  Kernel run;
  float *p, *m, *v;
  const float *g;
  size_t n;
  const Scalars *s;
} Share;

static void run_share(const Share *share) {
#ifdef ADAMW_X86
  /* Round to nearest, all exceptions masked, no flush-to-zero, no denormals-are-zero. */
  const unsigned int saved = _mm_getcsr();
  _mm_setcsr(0x1f80);
#endif
  share->run(share->p, share->g, share->m, share->v, share->n, share->s);
#ifdef ADAMW_X86
  _mm_setcsr(saved);
#endif
}

static void *thread_main(void *arg) {
  run_share((const Share *)arg);
  return NULL;
}

/* Below this many elements per thread a thread costs more than it saves. */
static const size_t MIN_PER_THREAD = 1 << 16;
enum { MAX_THREADS = 256 };

/* Splits [0, n) into contiguous ranges (starting at multiples of 16 elements, a cache line) and runs them. */
static void run_threads(Kernel run, float *p, const float *g, float *m, float *v, size_t n, const Scalars *s, size_t threads) {
  if (threads > n / MIN_PER_THREAD) threads = n / MIN_PER_THREAD;
  if (threads < 1) threads = 1;
  if (threads > MAX_THREADS) threads = MAX_THREADS;
  Share shares[MAX_THREADS];
  pthread_t ids[MAX_THREADS];
  size_t started = 0, at = 0;
  for (size_t t = 0; t < threads; t++) {
    /* In 64 bits: n · (t + 1) overflows a 32-bit size_t past 16 M elements. */
    size_t end = t + 1 == threads ? n : (size_t)(((uint64_t)n * (t + 1) / threads) & ~(uint64_t)15);
    shares[t] = (Share){run, p + at, m + at, v + at, g + at, end - at, s};
    at = end;
  }
  for (size_t t = 1; t < threads; t++) {
    if (pthread_create(&ids[t], NULL, thread_main, &shares[t]) != 0) break;
    started = t;
  }
  /* The calling thread takes the first share; a share whose thread did not start runs here too. */
  run_share(&shares[0]);
  for (size_t t = started + 1; t < threads; t++) run_share(&shares[t]);
  for (size_t t = 1; t <= started; t++) pthread_join(ids[t], NULL);
}

/* ---- Node-API glue ------------------------------------------------------------------------------ */

#define CHECK(env, call)                                                     \
  do {                                                                       \
    if ((call) != napi_ok) {                                                 \
      napi_throw_error((env), "E_NATIVE_ADAMW", "Node-API call failed: " #call); \
      return NULL;                                                           \
    }                                                                        \
  } while (0)

/* The float32 data of `value`, which must be a Float32Array holding [offset, offset + size). */
static float *float32_argument(napi_env env, napi_value value, const char *name, size_t offset, size_t size) {
  napi_valuetype type;
  bool is_typed = false;
  char message[200];
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_object || napi_is_typedarray(env, value, &is_typed) != napi_ok || !is_typed) {
    snprintf(message, sizeof message, "%s must be a Float32Array", name);
    napi_throw_type_error(env, "E_NATIVE_ADAMW", message);
    return NULL;
  }
  napi_typedarray_type kind;
  size_t length;
  void *data;
  if (napi_get_typedarray_info(env, value, &kind, &length, &data, NULL, NULL) != napi_ok || kind != napi_float32_array) {
    snprintf(message, sizeof message, "%s must be a Float32Array", name);
    napi_throw_type_error(env, "E_NATIVE_ADAMW", message);
    return NULL;
  }
  /* Written so that offset + size cannot wrap around. */
  if (size > length || offset > length - size) {
    snprintf(message, sizeof message, "%s has %zu elements; the range needs %.0f", name, length, (double)offset + (double)size);
    napi_throw_range_error(env, "E_NATIVE_ADAMW", message);
    return NULL;
  }
  /* Node-API's data pointer already points at element 0 of the view (byte offset applied); an empty
     view may have none, and NULL means "thrown" here. */
  static float empty;
  return length == 0 ? &empty : (float *)data;
}

/* A non-negative integer below 2^53. */
static int index_argument(napi_env env, napi_value value, const char *name, size_t *out) {
  double x;
  char message[160];
  if (napi_get_value_double(env, value, &x) != napi_ok || !(x >= 0) || x > 9007199254740991.0 || x > (double)SIZE_MAX || x != floor(x)) {
    snprintf(message, sizeof message, "%s must be a non-negative integer", name);
    napi_throw_range_error(env, "E_NATIVE_ADAMW", message);
    return 0;
  }
  *out = (size_t)x;
  return 1;
}

/*
 * update(param, grad, m, v, offset, size, scalars, threads, kernel?): scalars is a Float32Array
 * [beta1, 1-beta1, beta2, 1-beta2, eps, -stepSize, decayAlpha]; kernel a name of kernels() (default:
 * the best available).
 */
static napi_value update(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 8) {
    napi_throw_type_error(env, "E_NATIVE_ADAMW", "update(param, grad, m, v, offset, size, scalars, threads, kernel?) takes 8 or 9 arguments");
    return NULL;
  }
  size_t offset, size, threads;
  if (!index_argument(env, argv[4], "offset", &offset) || !index_argument(env, argv[5], "size", &size) || !index_argument(env, argv[7], "threads", &threads)) return NULL;
  float *p = float32_argument(env, argv[0], "param", offset, size);
  if (!p) return NULL;
  float *g = float32_argument(env, argv[1], "grad", offset, size);
  if (!g) return NULL;
  float *m = float32_argument(env, argv[2], "m", offset, size);
  if (!m) return NULL;
  float *v = float32_argument(env, argv[3], "v", offset, size);
  if (!v) return NULL;
  float *packed = float32_argument(env, argv[6], "scalars", 0, SCALAR_COUNT);
  if (!packed) return NULL;
  Scalars s;
  memcpy(&s, packed, sizeof s);

  Kernel run = NULL;
  napi_valuetype kernel_type = napi_undefined;
  if (argc >= 9) CHECK(env, napi_typeof(env, argv[8], &kernel_type));
  if (kernel_type == napi_undefined) {
    for (size_t k = 0; k < KERNEL_COUNT && !run; k++) run = KERNELS[k].available ? KERNELS[k].run : NULL;
  } else {
    char name[32];
    size_t length;
    if (kernel_type != napi_string || napi_get_value_string_utf8(env, argv[8], name, sizeof name, &length) != napi_ok) {
      napi_throw_type_error(env, "E_NATIVE_ADAMW", "kernel must be a string");
      return NULL;
    }
    for (size_t k = 0; k < KERNEL_COUNT && !run; k++) run = KERNELS[k].available && strcmp(KERNELS[k].name, name) == 0 ? KERNELS[k].run : NULL;
    if (!run) {
      char message[96];
      snprintf(message, sizeof message, "kernel '%s' is not available on this CPU (see kernels())", name);
      napi_throw_range_error(env, "E_NATIVE_ADAMW", message);
      return NULL;
    }
  }
  if (size > 0) run_threads(run, p + offset, g + offset, m + offset, v + offset, size, &s, threads);
  return NULL;
}

/* kernels(): the names of the kernels this CPU runs, best first. */
static napi_value kernels(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value list;
  CHECK(env, napi_create_array(env, &list));
  uint32_t at = 0;
  for (size_t k = 0; k < KERNEL_COUNT; k++) {
    if (!KERNELS[k].available) continue;
    napi_value name;
    CHECK(env, napi_create_string_utf8(env, KERNELS[k].name, NAPI_AUTO_LENGTH, &name));
    CHECK(env, napi_set_element(env, list, at++, name));
  }
  return list;
}

NAPI_MODULE_INIT() {
  detect_kernels();
  napi_value fn;
  CHECK(env, napi_create_function(env, "update", NAPI_AUTO_LENGTH, update, NULL, &fn));
  CHECK(env, napi_set_named_property(env, exports, "update", fn));
  CHECK(env, napi_create_function(env, "kernels", NAPI_AUTO_LENGTH, kernels, NULL, &fn));
  CHECK(env, napi_set_named_property(env, exports, "kernels", fn));
  return exports;
}
