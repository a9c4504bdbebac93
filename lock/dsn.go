package lock

import (
	"fmt"
	"regexp"
	"strings"
)

// ErrInvalidDSN means a DSN names no database that an engine of this
// package takes: empty, or a URL of a scheme no engine knows. Nothing is
// created for it.
var ErrInvalidDSN = fmt.Errorf("%w: DSN", ErrInvalidOption)

// The DSN syntax that engines' claims share.
var (
	// urlSchemeRE matches the scheme of a URL ("name://…").
	urlSchemeRE = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*)://`)
	// keywordDSNRE matches the start of a keyword/value DSN ("host=… ").
	keywordDSNRE = regexp.MustCompile(`^\s*[a-z_]+\s*=`)
)

// urlScheme returns the scheme of dsn, in lower case, when dsn is a URL
// ("name://…").
func urlScheme(dsn string) (scheme string, ok bool) {
	m := urlSchemeRE.FindStringSubmatch(dsn)
	if m == nil {
		return "", false
	}
	return strings.ToLower(m[1]), true
}

// isKeywordDSN reports whether dsn starts as a keyword/value DSN does: a
// lower-case keyword, then "=".
func isKeywordDSN(dsn string) bool { return keywordDSNRE.MatchString(dsn) }

// EngineOfDSN names the engine Open would open dsn with ("sqlite" or
// "postgres"), or returns an error wrapping ErrInvalidDSN. It opens
// nothing.
func EngineOfDSN(dsn string) (string, error) {
	k, err := kindOfDSN(dsn)
	if err != nil {
		return "", err
	}
	return k.name, nil
}

// RedactDSN returns dsn fit for a message or a log line: a PostgreSQL
// DSN's password is hidden, and a string that no engine takes is not shown
// at all, since it may hold a password in a form this package does not
// know.
func RedactDSN(dsn string) string { return redactDSN(dsn) }
