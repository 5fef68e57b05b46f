// C side of the cgo callback row: calls back into the exported Go function.
#include "_cgo_export.h"

int call_cb(int (*cb)(int), int x);

int call_go_plusone(int x) { return call_cb(goPlusOne, x); }

int loop_cb(int (*cb)(int), int n);

int loop_go_plusone(int n) { return loop_cb(goPlusOne, n); }
