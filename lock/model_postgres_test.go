package lock_test

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/entitylock/entitylock/lock"
	"github.com/entitylock/entitylock/lock/locktest"
)

// The fuzzer's model check on PostgreSQL: its seeds, its committed corpus
// and 40 random sequences of 64 operations, each on a fresh schema, with
// tokens compared through a tokenMap (one sequence serves every entity).
func TestLockOpsModelPostgres(t *testing.T) {
	b := locktest.Postgres(t)
	inputs := map[string][]byte{}
	for i, ops := range lockOpsSeeds {
		inputs["seed-"+strconv.Itoa(i)] = ops
	}
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzLockOps", "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no committed corpus (%v)", err)
	}
	for _, f := range files {
		inputs["corpus-"+filepath.Base(f)] = readCorpusFile(t, f)
	}
	rng := rand.New(rand.NewPCG(7, 11))
	for i := range 40 {
		ops := make([]byte, 4*64)
		for j := range ops {
			ops[j] = byte(rng.UintN(256))
		}
		inputs["random-"+strconv.Itoa(i)] = ops
	}
	for name, ops := range inputs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			checkLockOps(t, ops, newTokenMap(), func(opts ...lock.Option) *lock.Manager {
				return mustOpenPath(t, b.NewDSN(t), opts...)
			})
		})
	}
}

// readCorpusFile reads a one-value `go test fuzz v1` file holding a []byte.
func readCorpusFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 2 || lines[0] != "go test fuzz v1" ||
		!strings.HasPrefix(lines[1], "[]byte(") || !strings.HasSuffix(lines[1], ")") {
		t.Fatalf("%s: not a one-[]byte corpus file", path)
	}
	s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return []byte(s)
}
