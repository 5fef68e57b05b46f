// The Go peer of ffibench's sqlite table: 64 goroutines, each with its
// own connection and prepared statements, run point reads of every column
// or a mix with 10% single-row updates in transactions, for a fixed time.
// Three ways (the last argument):
//   - mattn: github.com/mattn/go-sqlite3 (cgo, built with -tags libsqlite3:
//     the system SQLite, as ffiber's rows use) through database/sql;
//   - mattn-driver: the same driver's statements called directly (its
//     driver.Stmt), without database/sql, to separate cgo's cost from
//     database/sql's;
//   - modernc: modernc.org/sqlite (SQLite translated to Go, no cgo)
//     through database/sql.
//
// usage: sqlite DB read|mix MS mattn|mattn-driver|modernc   (prints key=value lines)
//
// For the table's "time in the call layer" row, the mattn ways also print
// layer_ns: 8 cgo calls (the C calls a point read needs at least: bind,
// step, four column reads, reset... as ffiber's rows count them) times the
// measured cost of one cgo call to a trivial SQLite function. mattn makes
// more calls than that per query, so it is a lower bound.
package main

/*
#cgo LDFLAGS: -lsqlite3
#include <sqlite3.h>
*/
import "C"

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	sqlite3 "github.com/mattn/go-sqlite3"
	_ "modernc.org/sqlite"
)

const rows = 100000
const workers = 64

// cgoCallNs is the cost of one cgo call to sqlite3_libversion_number (which
// returns a constant), fastest of five rounds of a million calls.
func cgoCallNs() float64 {
	best := 1e18
	sum := C.int(0)
	for r := 0; r < 5; r++ {
		t := time.Now()
		for i := 0; i < 1000000; i++ {
			sum += C.sqlite3_libversion_number()
		}
		if ns := float64(time.Since(t).Nanoseconds()) / 1e6; ns < best {
			best = ns
		}
	}
	if sum == 0 {
		fmt.Fprintln(os.Stderr, "sqlite3_libversion_number returned 0")
	}
	return best
}

func main() {
	if len(os.Args) < 5 {
		fmt.Fprintln(os.Stderr, "usage: sqlite DB read|mix MS mattn|mattn-driver|modernc")
		os.Exit(2)
	}
	path, mode, how := os.Args[1], os.Args[2], os.Args[4]
	ms, _ := strconv.Atoi(os.Args[3])
	writes := uint64(0)
	if mode == "mix" {
		writes = 10
	}
	name, dsn := "sqlite3", "file:"+path+"?_busy_timeout=5000&_journal_mode=WAL&_synchronous=NORMAL"
	if how == "modernc" {
		name, dsn = "sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	}
	db, err := sql.Open(name, dsn)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	db.SetMaxOpenConns(workers)
	db.SetMaxIdleConns(workers)
	var stop atomic.Bool
	var wg sync.WaitGroup
	var queries atomic.Uint64
	lats := make([][]uint32, workers)
	ctx := context.Background()
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			conn, err := db.Conn(ctx)
			if err != nil {
				panic(err)
			}
			defer conn.Close()
			if how == "mattn-driver" {
				conn.Raw(func(dc any) error {
					n := driverWorker(dc.(*sqlite3.SQLiteConn), w, writes, &stop, &lats[w])
					queries.Add(n)
					return nil
				})
				return
			}
			get, err := conn.PrepareContext(ctx, "SELECT id, name, score FROM t WHERE id = ?1")
			if err != nil {
				panic(err)
			}
			upd, err := conn.PrepareContext(ctx, "UPDATE t SET score = score + 1 WHERE id = ?1")
			if err != nil {
				panic(err)
			}
			x := uint64(w)*7919 + 1
			n := uint64(0)
			var id int64
			var name string
			var score float64
			for !stop.Load() {
				key, write := next(&x, writes)
				t := time.Now()
				if write {
					tx, err := conn.BeginTx(ctx, nil)
					if err == nil {
						if _, err := tx.StmtContext(ctx, upd).ExecContext(ctx, key); err != nil {
							panic(err)
						}
						tx.Commit()
					}
				} else if err := get.QueryRowContext(ctx, key).Scan(&id, &name, &score); err != nil {
					panic(err)
				}
				n++
				if n%8 == 0 {
					lats[w] = append(lats[w], uint32(time.Since(t).Nanoseconds()))
				}
			}
			queries.Add(n)
		}(w)
	}
	time.Sleep(time.Duration(ms) * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	secs := time.Since(start).Seconds()
	var all []uint32
	for _, l := range lats {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		i := int(float64(len(all)) * p)
		if i >= len(all) {
			i = len(all) - 1
		}
		return float64(all[i]) / 1000
	}
	fmt.Printf("queries_per_s=%.0f\n", float64(queries.Load())/secs)
	if how != "modernc" {
		fmt.Printf("layer_ns=%.1f\n", 8*cgoCallNs())
	}
	fmt.Printf("p50_us=%.1f\np99_us=%.1f\n", pct(0.5), pct(0.99))
}

// driverWorker runs the workload on mattn's driver directly: its
// driver.Stmt, without database/sql.
func driverWorker(c *sqlite3.SQLiteConn, w int, writes uint64, stop *atomic.Bool, lat *[]uint32) uint64 {
	get, err := c.Prepare("SELECT id, name, score FROM t WHERE id = ?1")
	if err != nil {
		panic(err)
	}
	upd, err := c.Prepare("UPDATE t SET score = score + 1 WHERE id = ?1")
	if err != nil {
		panic(err)
	}
	dest := make([]driver.Value, 3)
	x := uint64(w)*7919 + 1
	n := uint64(0)
	for !stop.Load() {
		key, write := next(&x, writes)
		t := time.Now()
		if write {
			if _, err := c.Exec("BEGIN IMMEDIATE", nil); err == nil {
				if _, err := upd.Exec([]driver.Value{key}); err != nil {
					panic(err)
				}
				c.Exec("COMMIT", nil)
			}
		} else {
			r, err := get.Query([]driver.Value{key})
			if err != nil {
				panic(err)
			}
			if err := r.Next(dest); err != nil {
				panic(err)
			}
			r.Close()
		}
		n++
		if n%8 == 0 {
			*lat = append(*lat, uint32(time.Since(t).Nanoseconds()))
		}
	}
	get.Close()
	upd.Close()
	return n
}

// next steps the worker's xorshift state: the row to query, and whether
// the query is a write (writes in 100).
func next(x *uint64, writes uint64) (int64, bool) {
	*x ^= *x << 13
	*x ^= *x >> 7
	*x ^= *x << 17
	return int64(*x%rows) + 1, *x%100 < writes
}
