//go:build tools

// Package tools pins the code generators this module runs, so that
// `go tool`-style invocations (`go run github.com/sqlc-dev/sqlc/cmd/sqlc`)
// use the versions recorded in go.mod.
package tools

import (
	_ "github.com/sqlc-dev/sqlc/cmd/sqlc"
)
