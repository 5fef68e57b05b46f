// Runtime basics measured the same way as ffibench's ffiber and may rows:
// spawn+join, yield switch, channel ping-pong across Ps, resident memory
// per parked goroutine. Prints "metric=value" lines; ffibench parses them.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

// spawnJoin starts n goroutines and waits for all of them.
func spawnJoin(n int) float64 {
	start := time.Now()
	var wg sync.WaitGroup
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func() { wg.Done() }()
	}
	wg.Wait()
	return float64(time.Since(start).Nanoseconds()) / float64(n)
}

// spawnJoinBatches does spawnJoin(1000) `batches` times.
func spawnJoinBatches(batches int) float64 {
	start := time.Now()
	for b := 0; b < batches; b++ {
		spawnJoin(1000)
	}
	return float64(time.Since(start).Nanoseconds()) / float64(batches*1000)
}

func yieldSwitch(n int) float64 {
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	var wg sync.WaitGroup
	wg.Add(2)
	start := time.Now()
	for k := 0; k < 2; k++ {
		go func() {
			for i := 0; i < n; i++ {
				runtime.Gosched()
			}
			wg.Done()
		}()
	}
	wg.Wait()
	return float64(time.Since(start).Nanoseconds()) / float64(2*n)
}

func pingPong(n int) float64 {
	a, b := make(chan int), make(chan int)
	go func() {
		for v := range a {
			b <- v + 1
		}
	}()
	start := time.Now()
	v := 0
	for i := 0; i < n; i++ {
		a <- v
		v = <-b
	}
	close(a)
	return float64(time.Since(start).Nanoseconds()) / float64(n)
}

func rssKiB() float64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, res int
	fmt.Sscan(string(b), &size, &res)
	return float64(res*os.Getpagesize()) / 1024
}

func parkedKiB(n int) float64 {
	runtime.GC()
	before := rssKiB()
	release := make(chan struct{})
	var started, wg sync.WaitGroup
	started.Add(n)
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			started.Done()
			<-release
			wg.Done()
		}()
	}
	started.Wait()
	time.Sleep(10 * time.Millisecond)
	after := rssKiB()
	close(release)
	wg.Wait()
	return (after - before) / float64(n)
}

// parked starts n goroutines that each mark a WaitGroup and block receiving
// on one unbuffered channel; returns ns per goroutine to get them all there
// (spawn+park), and to close the channel and join them all (wake+join).
func parked(n int) (float64, float64) {
	ch := make(chan struct{})
	var started, done sync.WaitGroup
	started.Add(n)
	done.Add(n)
	start := time.Now()
	for i := 0; i < n; i++ {
		go func() {
			started.Done()
			<-ch
			done.Done()
		}()
	}
	started.Wait()
	spawn := float64(time.Since(start).Nanoseconds()) / float64(n)
	start = time.Now()
	close(ch)
	done.Wait()
	return spawn, float64(time.Since(start).Nanoseconds()) / float64(n)
}

func main() {
	scale := 1.0
	if len(os.Args) > 1 {
		scale, _ = strconv.ParseFloat(os.Args[1], 64)
	}
	n := func(base int) int { return int(float64(base)*scale) + 1 }
	fmt.Printf("version=%s\n", runtime.Version())
	fmt.Printf("spawn_join_ns=%.1f\n", spawnJoinBatches(n(200)))
	fmt.Printf("spawn_burst_ns=%.1f\n", spawnJoin(n(100000)))
	fmt.Printf("yield_ns=%.1f\n", yieldSwitch(n(1000000)))
	fmt.Printf("pingpong_ns=%.1f\n", pingPong(n(200000)))
	fmt.Printf("parked_kib=%.2f\n", parkedKiB(n(20000)))
	for _, c := range []struct {
		label string
		base  int
	}{{"park300k", 300000}, {"park1m", 1000000}} {
		s, w := parked(n(c.base))
		fmt.Printf("%s_spawn_ns=%.1f\n%s_wake_ns=%.1f\n", c.label, s, c.label, w)
	}
}
