package lock

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits on names, in bytes.
const (
	MaxEntityLen  = 1024
	MaxSessionLen = 256
)

func validateEntity(entity string) error {
	return validateName(entity, MaxEntityLen, ErrInvalidEntity)
}

func validateSession(id string) error {
	return validateName(id, MaxSessionLen, ErrInvalidSession)
}

func validateName(s string, max int, kind error) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty", kind)
	case len(s) > max:
		return fmt.Errorf("%w: %d bytes, over the limit of %d", kind, len(s), max)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: not valid UTF-8", kind)
	case strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("%w: contains NUL", kind)
	}
	return nil
}

func validateDuration(what string, d time.Duration) error {
	if d < time.Millisecond {
		return fmt.Errorf("%w: %s %v is under 1ms", ErrInvalidDuration, what, d)
	}
	return nil
}
