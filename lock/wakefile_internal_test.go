//go:build (linux || darwin || dragonfly || freebsd || netbsd || openbsd) && !(arm || mips || mipsle)

package lock

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Two maps of one wake file, as two processes have: a release rings only
// the bells of slots marked, and only while their mark lasts; a mark is
// never lowered; a third map, opened later, finds all as it was; the file
// has its one size.
func TestWakeFileMarksAndBells(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "l.db")
	waiter, releaser := openWake(t, dbPath), openWake(t, dbPath)
	for _, w := range []*wakeFile{waiter, releaser} {
		t.Cleanup(func() {
			if err := w.close(); err != nil {
				t.Error(err)
			}
		})
	}
	now := time.Now().UnixMilli()
	if wakeSlot("a") == wakeSlot("b") {
		t.Fatal(`"a" and "b" share a slot: pick other names`)
	}
	steps := []struct {
		name  string
		do    func()
		wantA int64 // the bell of "a" after the step, as the waiter reads it
		wantB int64
	}{
		{"a release of an entity nobody marked", func() { releaser.ring("a") }, 0, 0},
		{"a mark, then a release", func() { waiter.mark("a", now+60_000); releaser.ring("a") }, 1, 0},
		{"another entity's release", func() { releaser.ring("b") }, 1, 0},
		{"an earlier mark keeps the later one", func() { waiter.mark("a", now-60_000); releaser.ring("a") }, 2, 0},
		{"a mark that lapsed", func() { waiter.mark("b", now-60_000); releaser.ring("b") }, 2, 0},
		{"the releaser's own map marks too", func() { releaser.mark("b", now+60_000); releaser.ring("b") }, 2, 1},
	}
	for _, st := range steps {
		st.do()
		if a, b := waiter.bell("a"), waiter.bell("b"); a != st.wantA || b != st.wantB {
			t.Errorf("%s: bells a, b = %d, %d; want %d, %d", st.name, a, b, st.wantA, st.wantB)
		}
	}
	// A Manager opening the file later leaves what is in it as it was.
	later := openWake(t, dbPath)
	defer later.close()
	if !later.marked("a") || later.bell("a") != 2 || later.bell("b") != 1 {
		t.Errorf("a map opened later reads mark a %v, bells a, b %d, %d; want true, 2, 1",
			later.marked("a"), later.bell("a"), later.bell("b"))
	}
	info, err := os.Stat(dbPath + "-wake")
	if err != nil {
		t.Fatal(err)
	}
	if info.Size() != wakeFileSize {
		t.Errorf("wake file of %d bytes; want %d", info.Size(), wakeFileSize)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("wake file mode %v; want -rw-------", info.Mode().Perm())
	}
}

// The wake file stays while any Manager has it open and goes with the last,
// and one opened after that is a new file.
func TestWakeFileGoesWithTheLastManager(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "l.db")
	exists := func() bool {
		_, err := os.Stat(dbPath + "-wake")
		return err == nil
	}
	a, b := openWake(t, dbPath), openWake(t, dbPath)
	a.mark("x", time.Now().Add(time.Minute).UnixMilli())
	if err := a.close(); err != nil {
		t.Fatal(err)
	}
	if !exists() {
		t.Fatal("wake file removed while another Manager has it open")
	}
	if err := b.close(); err != nil {
		t.Fatal(err)
	}
	if exists() {
		t.Fatal("wake file left after the last Manager closed")
	}
	c := openWake(t, dbPath)
	defer c.close()
	if c.marked("x") {
		t.Error("a wake file made anew keeps a mark of the one removed")
	}
}

// openWake opens the wake file of dbPath, made with mode 0600.
func openWake(t *testing.T, dbPath string) *wakeFile {
	t.Helper()
	w, err := openWakeFile(dbPath, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// Managers that open the wake file of a new database at once, each marking
// at once, all share one file, and none loses another's mark.
func TestWakeFileMadeByManyAtOnce(t *testing.T) {
	const managers = 8
	for round := range 20 {
		dbPath := filepath.Join(t.TempDir(), fmt.Sprintf("l%d.db", round))
		files := make([]*wakeFile, managers)
		var wg sync.WaitGroup
		for i := range files {
			wg.Go(func() {
				w, err := openWakeFile(dbPath, 0o600)
				if err != nil {
					t.Error(err)
					return
				}
				w.mark(fmt.Sprint("entity-", i), time.Now().Add(time.Minute).UnixMilli())
				files[i] = w
			})
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		for i := range managers {
			if !files[0].marked(fmt.Sprint("entity-", i)) {
				t.Errorf("round %d: the mark of Manager %d is lost", round, i)
			}
		}
		for _, w := range files {
			if err := w.close(); err != nil {
				t.Error(err)
			}
		}
		if names, err := filepath.Glob(dbPath + "*"); err != nil || len(names) != 0 {
			t.Fatalf("round %d: left %v (%v)", round, names, err)
		}
	}
}

// A wake file of the wrong size (cut short by hand, or by a crash of the
// machine) is made anew by a Manager that has it alone.
func TestWakeFileCutShortIsMadeAnew(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "l.db")
	if err := os.WriteFile(dbPath+"-wake", make([]byte, 100), 0o600); err != nil {
		t.Fatal(err)
	}
	w := openWake(t, dbPath)
	defer w.close()
	info, err := os.Stat(dbPath + "-wake")
	if err != nil || info.Size() != wakeFileSize {
		t.Fatalf("wake file: %v, %v; want %d bytes", info, err, wakeFileSize)
	}
}
