// Package soak holds the soak test of entitylock: three processes with
// several goroutines each run a realistic mix of calls against one database
// while the test samples what grows (files, rows, memory, goroutines,
// connections, latency) and fails when a bound is crossed or a measure keeps
// growing. It has no API.
//
//	make soak                      # 10 minutes, SQLite, and PostgreSQL when
//	                               # ENTITYLOCK_POSTGRES_DSN is set
//	make soak SOAKTIME=1h
//
// `make test` runs it for 60 seconds.
package soak
