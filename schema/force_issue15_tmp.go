package schema

import (
	"context"
	"database/sql"
	"errors"
)

// Force is a stand-in until the lead's schema.Force lands on main: the
// command is written against its signature. TEMPORARY (issue-15).
func Force(ctx context.Context, db *sql.DB, version int) error {
	return errors.New("schema: force: not in this build yet")
}
