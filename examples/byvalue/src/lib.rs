//! Structs and unions by value, both ways: C functions of the preamble take
//! and return records of every System V class — one INTEGER eightbyte
//! (`{char}`), mixed INTEGER and SSE (`{int, float}`), two SSE eightbytes
//! (`{double, double}`), memory (`{long, long, long}`: 24 bytes, passed on
//! the stack and returned through a hidden pointer), packed, with an
//! array, a union, nested, and the classification's corners (three floats,
//! INTEGER then SSE and the reverse, over-aligned, a short array, a
//! `_Bool`) — and C calls Rust back with them
//! (`call_dd`, `call_lll`), by function pointer and by name through
//! `ffiber_export.h` (`by_name_*`). The bindings call these through the closure
//! form, where rustc's `extern "C"` classifies `#[repr(C)]` records as the
//! C compiler does; the tests compare every field.

ffiber::cgo! {
    pub mod c;
    r#"
    #cgo CFLAGS: -Wno-psabi
    /* (-Wno-psabi: gcc notes that passing a 32-byte-aligned record
       changed in GCC 4.6; not news here.) */
    /* The Rust functions below, declared for C; included before the
       records are defined (the header declares their tags ahead), and
       after the typedef that one of them names. */
    typedef struct { int x, y; } pt;
    #include "ffiber_export.h"

    struct c1 { char c; };
    struct ifl { int i; float f; };
    struct dd { double a, b; };
    struct lll { long a, b, c; };
    struct __attribute__((packed)) pk { char c; int i; };
    struct arr { int v[3]; };
    union num { long l; double d; };
    struct nested { struct ifl x; double y; };

    static struct c1 c1_next(struct c1 a) { a.c += 1; return a; }
    static struct ifl ifl_scale(struct ifl a, int k) { a.i *= k; a.f *= (float)k; return a; }
    static struct dd dd_swap(struct dd a) { double t = a.a; a.a = a.b; a.b = t; return a; }
    static struct lll lll_sum(struct lll a, struct lll b) { a.a += b.a; a.b += b.b; a.c += b.c; return a; }
    static struct pk pk_bump(struct pk a) { a.c += 1; a.i += 1; return a; }
    static struct arr arr_rev(struct arr a) { int t = a.v[0]; a.v[0] = a.v[2]; a.v[2] = t; return a; }
    static union num num_twice(union num n) { n.l *= 2; return n; }
    static struct nested nested_mix(struct nested n, double k) { n.x.i += 1; n.x.f *= (float)k; n.y *= k; return n; }

    /* C builds a record and hands it to a function pointer (Rust, in the
       tests), and returns what that returns. */
    static struct dd call_dd(struct dd (*f)(struct dd), double a, double b) { struct dd x = { a, b }; return f(x); }
    static struct lll call_lll(struct lll (*f)(struct lll), long a) { struct lll x = { a, a + 1, a + 2 }; return f(x); }

    /* More of the classification's corners: three floats (two SSE
       eightbytes, one half full), INTEGER then SSE and SSE then INTEGER,
       an over-aligned record (its second eightbyte is padding only), one
       aligned past 16 bytes (memory), a short array, a _Bool. */
    struct f3 { float x, y, z; };
    struct cd { char c; double d; };
    struct dc { double d; char c; };
    struct __attribute__((aligned(16))) al16 { int v; };
    struct __attribute__((aligned(32))) al32 { char c; };
    struct s3 { short s[3]; };
    struct bi { _Bool b; int i; };
    static struct f3 f3_rot(struct f3 a) { struct f3 r = { a.y, a.z, a.x }; return r; }
    static struct cd cd_mix(struct cd a, struct dc b) { a.c += b.c; a.d += b.d; return a; }
    static struct dc dc_mix(struct dc a, struct cd b) { a.c += b.c; a.d -= b.d; return a; }
    static struct al16 al16_add(struct al16 a, struct al16 b) { a.v += b.v; return a; }
    static struct al32 al32_next(struct al32 a) { a.c += 1; return a; }
    static struct s3 s3_sum(struct s3 a, struct s3 b) { for (int i = 0; i < 3; i++) a.s[i] += b.s[i]; return a; }
    static struct bi bi_flip(struct bi a) { a.b = !a.b; a.i = -a.i; return a; }

    /* Scalars Rust has no type for: laid out (as u128, [f64; 2]...) and
       reached by pointer, never passed by value; and __int128, which is
       (two registers, or memory once they run out). */
    struct wide { char tag; long double ld; __float128 q; _Complex double z; _Complex float zf; int k; };
    static void wide_fill(struct wide *w, int k) {
        w->tag = 'w'; w->ld = k * 0.5L; w->q = (__float128)k / 4;
        w->z = __builtin_complex((double)k, 2.0); w->zf = __builtin_complex((float)k, -1.0f); w->k = k;
    }
    static double ld_get(const long double *p) { return (double)*p; }
    /* A GNU vector (one SSE register by value; laid out as its elements)
       and an array of arrays. */
    typedef float v4 __attribute__((vector_size(16)));
    struct vg { char c; v4 w; int g[2][3]; };
    static void vg_fill(struct vg *p) {
        p->c = 'v'; p->w = (v4){ 1.0f, 2.0f, 3.0f, 4.0f };
        for (int i = 0; i < 2; i++) for (int j = 0; j < 3; j++) p->g[i][j] = 10 * i + j;
    }
    static double q_get(const __float128 *p) { return (double)*p; }
    static __int128 i128_mul(__int128 a, __int128 b) { return a * b; }
    static unsigned __int128 u128_shl(unsigned __int128 a, int k) { return a << k; }
    static __int128 i128_last(long a, long b, long c, long d, long e, __int128 x) { return x + a + b + c + d + e; }

    /* C calls Rust by name, through ffiber_export.h. */
    static struct ifl by_name_ifl(int i, float f, int k) { struct ifl x = { i, f }; return byvalue_scale_ifl(x, k); }
    static long by_name_lll(long a) { struct lll x = { a, 2 * a, 3 * a }; return byvalue_sum_lll(x); }
    static double by_name_num(double d) { union num n; n.d = d; return byvalue_neg_num(n).d; }
    static pt by_name_pt(int x, int y) { pt p = { x, y }; return byvalue_flip_pt(p); }
    "#
}

/// Called by C by name (`by_name_ifl`): a mixed INTEGER/SSE record in and out.
#[ffiber::export(name = "byvalue_scale_ifl")]
pub fn scale_ifl(x: c::ifl, k: i32) -> c::ifl {
    c::ifl { i: x.i * k, f: x.f * k as f32 }
}

/// Called by C by name (`by_name_lll`): a record passed in memory.
#[ffiber::export(name = "byvalue_sum_lll")]
pub fn sum_lll(x: c::lll) -> std::ffi::c_long {
    x.a + x.b + x.c
}

/// Called by C by name (`by_name_num`): a union in and out.
#[ffiber::export(name = "byvalue_neg_num")]
pub fn neg_num(n: c::num) -> c::num {
    // SAFETY: C stored the double member.
    c::num { d: -unsafe { n.d } }
}

/// Called by C by name (`by_name_pt`): a typedef'd untagged record.
#[ffiber::export(name = "byvalue_flip_pt")]
pub fn flip_pt(p: c::pt) -> c::pt {
    c::pt { x: p.y, y: p.x }
}
