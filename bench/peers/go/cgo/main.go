// cgo against libplusone.so (bench/peers/c/plusone.c), as ffibench runs the
// same workloads for ffiber. Prints metric=value lines.
//
//	cgo-bench all <count>     calls, then callback with count/4
//	cgo-bench calls <count>   the talk's loop: plain cgo, and a twin symbol
//	                          annotated #cgo noescape + nocallback (Go 1.24+)
//	cgo-bench callback <count> Go -> C -> Go (an exported Go function)
//	cgo-bench ticker <ms>     goroutines blocked in C on every P while a
//	                          ticker goroutine measures its lateness
//	cgo-bench sleepers <n>    n goroutines each make one cgo call that
//	                          sleeps 1 ms
package main

/*
#cgo LDFLAGS: -lplusone
#cgo noescape plusone_nc
#cgo nocallback plusone_nc
int plusone(int x);
int plusone_nc(int x);
int call_go_plusone(int x);
int loop_go_plusone(int n);
void block_ms(int ms);
long use_stack(int kib);
*/
import "C"

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

//export goPlusOne
func goPlusOne(x C.int) C.int { return x + 1 }

//go:noinline
func goPlusOneLocal(x C.int) C.int { return x + 1 }

func calls(count int) {
	start := time.Now()
	y := C.int(0)
	for y < C.int(count) {
		y = goPlusOneLocal(y)
	}
	fmt.Printf("go_call_ns=%.3f\n", float64(time.Since(start).Nanoseconds())/float64(count))
	start = time.Now()
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

func callback(count int) {
	start := time.Now()
	x := C.int(0)
	for x < C.int(count) {
		x = C.call_go_plusone(x)
	}
	fmt.Printf("cgo_callback_ns=%.3f\n", float64(time.Since(start).Nanoseconds())/float64(count))
	start = time.Now()
	C.loop_go_plusone(C.int(count))
	fmt.Printf("cgo_callback_loop_ns=%.3f\n", float64(time.Since(start).Nanoseconds())/float64(count))
}

func ticker(ms int) {
	procs := runtime.GOMAXPROCS(0)
	until := time.Now().Add(time.Duration(ms+30) * time.Millisecond)
	done := make(chan struct{})
	for i := 0; i < 2*procs; i++ {
		go func() {
			for time.Now().Before(until) {
				C.block_ms(20)
			}
			done <- struct{}{}
		}()
	}
	time.Sleep(5 * time.Millisecond)
	var late []float64
	deadline := time.Now().Add(time.Duration(ms) * time.Millisecond)
	for time.Now().Before(deadline) {
		want := time.Now().Add(time.Millisecond)
		time.Sleep(time.Millisecond)
		late = append(late, float64(time.Since(want).Microseconds()))
	}
	for i := 0; i < 2*procs; i++ {
		<-done
	}
	sort.Float64s(late)
	fmt.Printf("ticker_p50_us=%.1f\n", late[len(late)/2])
	fmt.Printf("ticker_p99_us=%.1f\n", late[len(late)*99/100])
}

// hogs: one goroutine per P counts in a tight loop for ms milliseconds,
// first alone, then while a ticker sleeps 1 ms at a time; prints the
// ticker's lateness (p50, p99, max) and the hogs' work per second in both.
func hogs(ms int) {
	procs := runtime.GOMAXPROCS(0)
	phase := func(withTicker bool) (float64, []float64) {
		var stop atomic.Bool
		counts := make([]uint64, procs)
		var wg sync.WaitGroup
		for i := 0; i < procs; i++ {
			wg.Add(1)
			go func(i int) {
				n := uint64(0)
				for !stop.Load() {
					n++
				}
				counts[i] = n
				wg.Done()
			}(i)
		}
		start := time.Now()
		var late []float64
		if withTicker {
			deadline := start.Add(time.Duration(ms) * time.Millisecond)
			for time.Now().Before(deadline) {
				want := time.Now().Add(time.Millisecond)
				time.Sleep(time.Millisecond)
				late = append(late, float64(time.Since(want).Microseconds()))
			}
		} else {
			time.Sleep(time.Duration(ms) * time.Millisecond)
		}
		stop.Store(true)
		wg.Wait()
		total := uint64(0)
		for _, c := range counts {
			total += c
		}
		return float64(total) / time.Since(start).Seconds(), late
	}
	alone, _ := phase(false)
	with, late := phase(true)
	sort.Float64s(late)
	fmt.Printf("hogs_p50_us=%.1f\nhogs_p99_us=%.1f\nhogs_max_us=%.1f\n", late[len(late)/2], late[len(late)*99/100], late[len(late)-1])
	fmt.Printf("hogs_work_ratio=%.3f\n", with/alone)
}

// deep: n goroutines, each calling C that uses 256 KiB of stack.
func deep(n int) {
	var wg sync.WaitGroup
	var total int64
	var mu sync.Mutex
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := int64(C.use_stack(256))
			mu.Lock()
			total += v
			mu.Unlock()
		}()
	}
	wg.Wait()
	fmt.Printf("deep_ok=%d\n", map[bool]int{true: 1, false: 0}[total == int64(n)*64])
	fmt.Printf("deep_peak_mib=%.1f\n", peakMiB())
}

func peakMiB() float64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			var kb float64
			fmt.Sscan(strings.TrimSpace(strings.TrimPrefix(l, "VmHWM:")), &kb)
			return kb / 1024
		}
	}
	return 0
}

// sleepers: n goroutines, each making one cgo call that sleeps 1 ms in C;
// prints the wall time and the most OS threads the process had at once.
func sleepers(n int) {
	var stop atomic.Bool
	var peak atomic.Int64
	sampled := make(chan struct{})
	go func() {
		for !stop.Load() {
			if t := threadsNow(); t > peak.Load() {
				peak.Store(t)
			}
			time.Sleep(2 * time.Millisecond)
		}
		close(sampled)
	}()
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			C.block_ms(1)
			wg.Done()
		}()
	}
	wg.Wait()
	s := time.Since(start).Seconds()
	stop.Store(true)
	<-sampled
	fmt.Printf("sleepers_s=%.3f\nsleepers_threads=%d\n", s, peak.Load())
}

// threadsNow is the Threads: line of /proc/self/status.
func threadsNow() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Threads:"); ok {
			t, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return t
		}
	}
	return 0
}

func main() {
	mode, n := "all", 20000000
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	if len(os.Args) > 2 {
		if v, err := strconv.Atoi(os.Args[2]); err == nil {
			n = v
		}
	}
	switch mode {
	case "all":
		calls(n)
		callback(n / 4)
	case "calls":
		calls(n)
	case "callback":
		callback(n)
	case "ticker":
		ticker(n)
	case "deep":
		deep(n)
	case "hogs":
		hogs(n)
	case "sleepers":
		sleepers(n)
	default:
		fmt.Fprintln(os.Stderr, "usage: cgo-bench calls|callback|ticker|deep|hogs|sleepers N")
		os.Exit(2)
	}
}
