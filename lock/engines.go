package lock

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"log/slog"
	"strings"

	"github.com/entitylock/entitylock/schema"
)

// An engineKind describes one database engine: everything this package
// needs to recognise, open, migrate and drive a database of that engine.
// Each engine's description lives beside its opener and its adapter
// (sqlite.go, postgres.go); engineKinds lists them.
type engineKind struct {
	name string
	// dsnForms names, for an error about a DSN that no engine takes, the
	// forms of DSN that claims accepts.
	dsnForms string
	// claims reports whether dsn names a database of this engine. No two
	// engines claim the same DSN.
	claims func(dsn string) bool
	// ownsDriver reports whether a *sql.DB whose driver is d talks to this
	// engine.
	ownsDriver func(d driver.Driver) bool
	// driverPkg is the import path of that driver, for an error about a
	// *sql.DB that no engine takes.
	driverPkg string
	// open opens the database dsn names, which claims accepted, with the
	// access asked for; it neither checks nor migrates the schema.
	open func(ctx context.Context, dsn string, access Access) (*openedDB, error)
	// redact returns dsn with any password in it hidden, for messages.
	redact func(dsn string) string
	// migrations is the engine's embedded schema.
	migrations *schema.Migrations
	// adapter returns the engine's statements over db; o is what open
	// returned, or nil when db is the caller's (New); log takes what the
	// engine has to report while it starts.
	adapter func(ctx context.Context, db *sql.DB, o *openedDB, log *slog.Logger) (engine, error)
	// serverClock: the database server's clock times leases unless the
	// Manager has WithClock, so every process reads the same clock.
	serverClock bool
}

// openedDB is a database that this package opened, with what a Manager
// that owns it must also do.
type openedDB struct {
	db *sql.DB
	// health, when set, makes the pool ping a connection that may have
	// died with another before reusing it (see retry_postgres.go).
	health *connHealth
	// run, when set, is background work for the Manager's life.
	run func(m *Manager)
	// drop, when set, deletes a database that lives only as long as its
	// handle (SQLite's ":memory:"); close calls it.
	drop func()
}

// close closes the database and whatever was made for it.
func (o *openedDB) close() error {
	err := o.db.Close()
	if o.drop != nil {
		o.drop()
	}
	return err
}

// engineKinds is every engine this package can use, and the one place an
// engine is chosen: by DSN (kindOfDSN) or by *sql.DB driver (kindOfDB).
// Neither falls back to a default engine.
var engineKinds = []*engineKind{sqliteKind, postgresKind}

// kindOfDSN returns the engine that claims dsn, or an error wrapping
// ErrInvalidDSN that lists the forms of DSN every engine takes.
func kindOfDSN(dsn string) (*engineKind, error) {
	if strings.TrimSpace(dsn) == "" {
		return nil, fmt.Errorf("%w is empty", ErrInvalidDSN)
	}
	if strings.ContainsRune(dsn, 0) {
		return nil, fmt.Errorf("%w holds a NUL byte", ErrInvalidDSN)
	}
	var found *engineKind
	for _, k := range engineKinds {
		if !k.claims(dsn) {
			continue
		}
		if found != nil {
			return nil, fmt.Errorf("%w: both %s and %s take %s", ErrInvalidDSN, found.name, k.name, redactDSN(dsn))
		}
		found = k
	}
	if found == nil {
		forms := make([]string, len(engineKinds))
		for i, k := range engineKinds {
			forms[i] = k.dsnForms
		}
		return nil, fmt.Errorf("%w: no engine takes %s; want %s", ErrInvalidDSN, redactDSN(dsn), strings.Join(forms, ", or "))
	}
	return found, nil
}

// kindOfDB returns the engine db's driver talks to, or an error wrapping
// ErrInvalidOption.
func kindOfDB(db *sql.DB) (*engineKind, error) {
	if db == nil {
		return nil, fmt.Errorf("%w: nil *sql.DB", ErrInvalidOption)
	}
	for _, k := range engineKinds {
		if k.ownsDriver(db.Driver()) {
			return k, nil
		}
	}
	pkgs := make([]string, len(engineKinds))
	for i, k := range engineKinds {
		pkgs[i] = k.driverPkg
	}
	return nil, fmt.Errorf("%w: *sql.DB uses driver %T, which no engine takes; want one of %s", ErrInvalidOption, db.Driver(), strings.Join(pkgs, ", "))
}

// redactDSN hides the password of a DSN that an engine claims, and the
// whole of one that none does (it may hold a password in any form).
func redactDSN(dsn string) string {
	for _, k := range engineKinds {
		if k.claims(dsn) {
			return k.redact(dsn)
		}
	}
	return "the DSN"
}
