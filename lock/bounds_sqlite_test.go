package lock_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/entitylock/entitylock/lock"
)

// Grants, refreshes and releases alone keep the -wal file bounded: each of
// their statements is stepped to SQLITE_DONE, where SQLite checkpoints.
// (Statements read with QueryRow never checkpointed: 3,000 grants made a
// -wal of about 30 MiB.)
func TestSQLiteWALStaysBounded(t *testing.T) {
	const (
		entities = 3000
		bound    = 8 << 20 // journal_size_limit; a checkpoint is due at 4 MiB
	)
	path := filepath.Join(t.TempDir(), "wal.db")
	m := mustOpenPath(t, path, lock.WithSweepInterval(0))
	s := mustSession(t, m, "s")
	var largest int64
	phases := []struct {
		name string
		op   func(entity string) error
	}{
		{"grant", func(e string) error { _, err := s.TryAcquire(t.Context(), e); return err }},
		{"refresh", func(e string) error { _, err := s.TryAcquire(t.Context(), e); return err }},
		{"release", func(e string) error { _, err := s.Release(t.Context(), e); return err }},
	}
	for _, p := range phases {
		for i := range entities {
			if err := p.op(fmt.Sprintf("entity::%d", i)); err != nil {
				t.Fatalf("%s %d: %v", p.name, i, err)
			}
			if i%50 == 0 {
				if fi, err := os.Stat(path + "-wal"); err == nil {
					largest = max(largest, fi.Size())
				}
			}
		}
	}
	if largest > bound {
		t.Errorf("largest -wal %d bytes, want at most %d", largest, bound)
	}
	t.Logf("largest -wal: %.1f MiB", float64(largest)/(1<<20))
}

// Every generated SQLite call site reads its rows to the end: none goes
// through QueryRow, which stops before SQLITE_DONE.
func TestSQLiteQueriesReadToDone(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "db", "sqlitedb", "*.sql.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no generated query files: %v", err)
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, call := range []string{"q.queryRow(", "QueryRowContext("} {
			if n := strings.Count(string(src), call); n > 0 {
				t.Errorf("%s calls %s %d times; make those queries :many (see queries/sqlite)", f, call, n)
			}
		}
	}
}

// A purge gives most of the free pages back to the file system, in a file
// Open created (auto_vacuum=INCREMENTAL).
func TestSQLitePurgeShrinksFile(t *testing.T) {
	m := mustOpen(t, lock.WithSweepInterval(0))
	for chunk := range 200 {
		// A session per chunk: ReleaseAll's cost grows with the session's
		// rows, released ones included, until they are purged.
		s := mustSession(t, m, fmt.Sprintf("s%d", chunk))
		names := make([]string, 100)
		for i := range names {
			names[i] = fmt.Sprintf("entity::%03d::%03d", chunk, i)
		}
		if _, err := s.AcquireAll(t.Context(), names...); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ReleaseAll(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	pragma := func(name string) int64 {
		t.Helper()
		var v int64
		if err := m.DB().QueryRowContext(t.Context(), "PRAGMA "+name).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if mode := pragma("auto_vacuum"); mode != 2 {
		t.Fatalf("auto_vacuum = %d, want 2 (INCREMENTAL)", mode)
	}
	before := pragma("page_count")
	if n, err := m.PurgeExpired(t.Context()); err != nil || n != 20000 {
		t.Fatalf("PurgeExpired = %d, %v; want 20000", n, err)
	}
	after, free := pragma("page_count"), pragma("freelist_count")
	t.Logf("pages: %d before the purge, %d after, %d of them free", before, after, free)
	if after*2 > before || free > max(256, after/4) {
		t.Errorf("after the purge %d pages (%d free), before %d: want under half, at most a quarter free", after, free, before)
	}
}
