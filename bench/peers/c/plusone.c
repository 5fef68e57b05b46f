/* The talk's workload (dyu/ffi-overhead): built -O2 into libplusone.so, so
 * that every caller reaches it through the PLT. `plusone_nc` is the same
 * function under a second name, for callers that annotate it differently
 * (cgo's noescape/nocallback) in the same program. */
int plusone(int x) { return x + 1; }
int plusone_nc(int x) { return x + 1; }
