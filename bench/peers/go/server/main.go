// The Go peer of ffibench's server table: net/http with the same routes
// as examples/kvserver. /kv stores in SQLite through
// github.com/mattn/go-sqlite3 built with -tags libsqlite3 (the system
// SQLite, as kvserver uses): cgo on every request, in a real server.
//
// usage: server -addr 127.0.0.1:0 -db PATH
// Prints "listening on ADDR" once it accepts connections.
package main

import (
	"database/sql"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"

	_ "github.com/mattn/go-sqlite3"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	dbPath := flag.String("db", "kv.db", "database file")
	flag.Parse()
	db, err := sql.Open("sqlite3", "file:"+*dbPath+"?_journal_mode=WAL&_synchronous=NORMAL&_busy_timeout=5000")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	db.SetMaxIdleConns(64)
	if _, err := db.Exec("CREATE TABLE IF NOT EXISTS kv(k TEXT PRIMARY KEY, v BLOB NOT NULL)"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	get, err := db.Prepare("SELECT v FROM kv WHERE k = ?1")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	put, err := db.Prepare("INSERT INTO kv(k, v) VALUES(?1, ?2) ON CONFLICT(k) DO UPDATE SET v = excluded.v")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("Hello, World!"))
	})
	mux.HandleFunc("/kv/", func(w http.ResponseWriter, r *http.Request) {
		k := strings.TrimPrefix(r.URL.Path, "/kv/")
		switch r.Method {
		case "GET":
			var v []byte
			if err := get.QueryRow(k).Scan(&v); err == sql.ErrNoRows {
				http.Error(w, "no such key", 404)
			} else if err != nil {
				http.Error(w, err.Error(), 500)
			} else {
				w.Write(v)
			}
		case "PUT":
			body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			if _, err := put.Exec(k, body); err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			w.WriteHeader(204)
		default:
			http.Error(w, "GET or PUT", 405)
		}
	})
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("listening on %s\n", l.Addr())
	os.Stdout.Sync()
	http.Serve(l, mux)
}
