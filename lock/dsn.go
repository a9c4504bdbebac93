package lock

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/entitylock/entitylock/schema"
)

// ErrInvalidDSN means Open was given a DSN that names no database it can
// open: empty, or a URL with a scheme other than postgres, postgresql or
// file. Nothing is created for it.
var ErrInvalidDSN = fmt.Errorf("%w: DSN", ErrInvalidOption)

var (
	// urlScheme matches the scheme of a URL ("name://…").
	urlScheme = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*)://`)
	// keywordDSN matches the start of a libpq keyword/value DSN
	// ("host=… user=…").
	keywordDSN = regexp.MustCompile(`^\s*[a-z_]+\s*=`)
)

// EngineOfDSN tells which engine Open would open dsn with, by the rules
// Open states, or returns an error wrapping ErrInvalidDSN. It opens nothing.
func EngineOfDSN(dsn string) (schema.Engine, error) {
	e, _, err := parseDSN(dsn)
	return e, err
}

// parseDSN tells which engine dsn names, and returns it in the form that
// engine's opener takes: a PostgreSQL URL's scheme in lower case (pgx
// recognises no other), anything else as given.
//
//   - postgres:// or postgresql:// in any letter case, or a libpq
//     keyword/value string whose first word is a keyword ("host=… dbname=…"):
//     PostgreSQL.
//   - a "file:" URI, ":memory:", or any other string: an SQLite file path. A
//     path whose first "=" comes before any "/" reads as a keyword/value
//     DSN: write it "./name" or "file:name".
//   - another URL scheme, or nothing: ErrInvalidDSN.
func parseDSN(dsn string) (schema.Engine, string, error) {
	if strings.TrimSpace(dsn) == "" {
		return 0, "", fmt.Errorf("%w is empty", ErrInvalidDSN)
	}
	if m := urlScheme.FindStringSubmatch(dsn); m != nil {
		switch scheme := strings.ToLower(m[1]); scheme {
		case "postgres", "postgresql":
			return schema.Postgres, scheme + dsn[len(m[1]):], nil
		case "file":
			return schema.SQLite, dsn, nil
		default:
			return 0, "", fmt.Errorf("%w: scheme %q is not supported; want postgres://, postgresql://, a file: URI or an SQLite file path", ErrInvalidDSN, m[1])
		}
	}
	if keywordDSN.MatchString(dsn) {
		return schema.Postgres, dsn, nil
	}
	return schema.SQLite, dsn, nil
}
