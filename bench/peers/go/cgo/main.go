// cgo calling plusone in libplusone.so (bench/peers/c/plusone.c), the
// talk's loop: plain cgo, and the same call to a twin symbol annotated
// `#cgo noescape` + `#cgo nocallback` (Go 1.24+). Prints metric=value lines
// for ffibench. Usage: cgo-bench <count>
package main

/*
#cgo LDFLAGS: -lplusone
#cgo noescape plusone_nc
#cgo nocallback plusone_nc
int plusone(int x);
int plusone_nc(int x);
*/
import "C"

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

func main() {
	count := 20000000
	if len(os.Args) > 1 {
		if n, err := strconv.Atoi(os.Args[1]); err == nil {
			count = n
		}
	}
	start := time.Now()
	x := C.int(0)
	for x < C.int(count) {
		x = C.plusone(x)
	}
	fmt.Printf("cgo_ns=%.3f\n", float64(time.Since(start).Nanoseconds())/float64(count))

	start = time.Now()
	x = 0
	for x < C.int(count) {
		x = C.plusone_nc(x)
	}
	fmt.Printf("cgo_nc_ns=%.3f\n", float64(time.Since(start).Nanoseconds())/float64(count))
}
