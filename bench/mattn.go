package main

// The cgo SQLite driver, for the baseline of the seed's SQL on the fastest
// C binding. Build with -ldflags="-X github.com/mattn/go-sqlite3.driverName=sqlite3-mattn":
// both drivers register "sqlite3" by default.
import _ "github.com/mattn/go-sqlite3"
