package lock_test

import (
	"context"
	"database/sql"
	sqldriver "database/sql/driver"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ncruces/go-sqlite3/driver"

	"github.com/entitylock/entitylock/lock"
)

func TestOpenDSNs(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, dsn, wantJournal string
	}{
		{"path", filepath.Join(dir, "plain.db"), "wal"},
		{"path with URI characters", filepath.Join(dir, "odd?name#%.db"), "wal"},
		{"file URI", "file:" + filepath.Join(dir, "uri.db"), "wal"},
		{"file URI with own journal mode", "file:" + filepath.Join(dir, "own.db") + "?_pragma=journal_mode(delete)", "delete"},
		{"memory", ":memory:", "memory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := lock.Open(t.Context(), tt.dsn)
			if err != nil {
				t.Fatalf("Open(%q): %v", tt.dsn, err)
			}
			defer m.Close()
			// Many connections in the pool must all see one database.
			var wg sync.WaitGroup
			for i := range 8 {
				s := mustSession(t, m, "s")
				wg.Go(func() { mustAcquire(t, s, string(rune('a'+i))) })
			}
			wg.Wait()
			got, err := m.Locks(t.Context())
			if err != nil || len(got) != 8 {
				t.Fatalf("Locks = %d leases, %v; want 8", len(got), err)
			}
			if tt.name == "path with URI characters" {
				if _, err := os.Stat(tt.dsn); err != nil {
					t.Errorf("database not at the literal path: %v", err)
				}
			}
		})
	}
}

func TestOpenRejectsNonSQLiteFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notes.txt")
	content := []byte("this is not a database, just some text that is long enough to look like a header.....\n")
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	if m, err := lock.Open(t.Context(), path); err == nil {
		m.Close()
		t.Fatal("Open of a text file succeeded")
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != string(content) {
		t.Errorf("file changed: %q, %v", got, err)
	}
}

// Eight Managers open the same fresh file at the same moment; all succeed.
func TestConcurrentOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fresh.db")
	const n = 8
	start := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			m, err := lock.Open(context.Background(), path)
			if err == nil {
				err = m.Close()
			}
			errs[i] = err
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
		}
	}
}

func TestNewUsesCallersDB(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.db")
	db, err := driver.Open("file:" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE app_items (id INTEGER PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	m, err := lock.New(t.Context(), db)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	s := mustSession(t, m, "s")
	mustAcquire(t, s, "e")
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	// The caller's handle stays open and sees both schemas.
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM entitylock_leases`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("after Close, caller's db: count = %d, %v; want 1, nil", n, err)
	}
	if _, err := s.TryAcquire(t.Context(), "e"); !errors.Is(err, lock.ErrClosed) {
		t.Errorf("got err %v, want ErrClosed", err)
	}
}

// New and SchemaOf refuse a *sql.DB of any driver but the engines'.
func TestNewRefusesOtherDrivers(t *testing.T) {
	other := sql.OpenDB(otherDriver{}) // not registered: Register twice panics under -count
	defer other.Close()
	if _, err := lock.New(t.Context(), other); !errors.Is(err, lock.ErrInvalidOption) {
		t.Errorf("New(*sql.DB of another driver): got err %v, want ErrInvalidOption", err)
	}
	if _, err := lock.SchemaOf(other); !errors.Is(err, lock.ErrInvalidOption) {
		t.Errorf("SchemaOf(*sql.DB of another driver): got err %v, want ErrInvalidOption", err)
	}
}

// otherDriver is a database/sql driver that is neither engine's.
type otherDriver struct{}

func (otherDriver) Open(string) (sqldriver.Conn, error) { return nil, errors.New("not a real driver") }

// As its own connector.
func (d otherDriver) Connect(context.Context) (sqldriver.Conn, error) { return d.Open("") }
func (d otherDriver) Driver() sqldriver.Driver                        { return d }
