package lock_test

import (
	"testing"

	"github.com/entitylock/entitylock/lock/locktest"
)

// The behaviour suite, on each engine.

func TestConformanceSQLite(t *testing.T) { locktest.Run(t, locktest.SQLite()) }

func TestConformancePostgres(t *testing.T) { locktest.Run(t, locktest.Postgres(t)) }
