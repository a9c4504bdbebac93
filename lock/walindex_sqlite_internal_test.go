package lock

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// committing tells a frame written after the last commit (a commit under
// way) from everything else, and says yes whenever it cannot tell.
func TestWALIndexCommitting(t *testing.T) {
	const pageSize = 512
	salts := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	other := []byte{9, 9, 9, 9, 9, 9, 9, 9}
	// files writes a -shm header for 2 committed frames and a -wal file
	// with those frames, changed by edit, then reads them.
	files := func(t *testing.T, edit func(shm, wal []byte) (wantShm, wantWal []byte)) *walIndex {
		t.Helper()
		shm := make([]byte, walIndexHeaderSize)
		shm[12] = 1 // isInit
		binary.NativeEndian.PutUint16(shm[14:16], pageSize)
		binary.NativeEndian.PutUint32(shm[16:20], 2) // mxFrame
		copy(shm[32:40], salts)
		wal := make([]byte, 32+2*(24+pageSize))
		binary.BigEndian.PutUint32(wal[8:12], pageSize)
		copy(wal[16:24], salts)
		for f := range 2 {
			copy(wal[32+f*(24+pageSize)+8:], salts)
		}
		shm, wal = edit(shm, wal)
		path := filepath.Join(t.TempDir(), "l.db")
		if err := os.WriteFile(path+"-shm", shm, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path+"-wal", wal, 0o600); err != nil {
			t.Fatal(err)
		}
		x := openWALIndex(path)
		if x == nil {
			t.Fatal("openWALIndex: nil")
		}
		t.Cleanup(x.close)
		return x
	}
	frame := func(s []byte) []byte {
		f := make([]byte, 24+pageSize)
		copy(f[8:16], s)
		return f
	}
	for _, c := range []struct {
		name string
		edit func(shm, wal []byte) ([]byte, []byte)
		want bool
	}{
		{"nothing after the last commit", func(shm, wal []byte) ([]byte, []byte) { return shm, wal }, false},
		{"a frame of this log after it", func(shm, wal []byte) ([]byte, []byte) { return shm, append(wal, frame(salts)...) }, true},
		{"half a frame header after it", func(shm, wal []byte) ([]byte, []byte) { return shm, append(wal, frame(salts)[:10]...) }, true},
		{"an older log's frame after it", func(shm, wal []byte) ([]byte, []byte) { return shm, append(wal, frame(other)...) }, false},
		{"a log restarted, header not yet written", func(shm, wal []byte) ([]byte, []byte) {
			copy(shm[32:40], other)
			return shm, wal
		}, true},
		{"a page size the index does not give", func(shm, wal []byte) ([]byte, []byte) {
			binary.BigEndian.PutUint32(wal[8:12], 2*pageSize)
			return shm, wal
		}, true},
		{"an index not initialized", func(shm, wal []byte) ([]byte, []byte) {
			shm[12] = 0
			return shm, wal
		}, true},
		{"an empty log", func(shm, _ []byte) ([]byte, []byte) { return shm, nil }, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := files(t, c.edit).committing(); got != c.want {
				t.Errorf("committing() = %v; want %v", got, c.want)
			}
		})
	}
}

// On files SQLite wrote: nothing is under way after commits, and a
// transaction whose pages spilled into the log before its commit is.
func TestWALIndexCommittingOnSQLiteFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l.db")
	m := openInternal(t, path)
	s := sessionOf(t, m, "s")
	ctx := t.Context()
	for range 3 {
		if _, err := s.TryAcquire(ctx, "e"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Release(ctx, "e"); err != nil {
			t.Fatal(err)
		}
	}
	x := openWALIndex(path)
	if x == nil {
		t.Fatal("no -shm file")
	}
	t.Cleanup(x.close)
	if x.committing() {
		t.Error("after 6 commits: committing() = true; want false")
	}

	conn, err := m.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	exec := func(query string) {
		t.Helper()
		if _, err := conn.ExecContext(ctx, query); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
	}
	exec("PRAGMA cache_size = 10")
	exec("BEGIN IMMEDIATE")
	defer conn.ExecContext(context.Background(), "ROLLBACK")
	exec("CREATE TABLE scratch (b BLOB)")
	exec("INSERT INTO scratch SELECT randomblob(4000) FROM generate_series(1, 100)")
	x.changed()
	if !x.committing() {
		t.Error("with 100 pages written and not committed: committing() = false; want true")
	}
}
