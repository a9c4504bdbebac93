package main

import (
	"runtime/debug"
	"strings"
)

// version describes this build from what the Go toolchain stamped in it:
// the module version ("(devel)" for a build from a checkout), the commit and
// its time, whether the tree had uncommitted changes, and the Go version.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown build)"
	}
	parts := []string{info.Main.Version}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if rev := settings["vcs.revision"]; rev != "" {
		c := "commit " + rev[:min(12, len(rev))]
		if t := settings["vcs.time"]; t != "" {
			c += " (" + t + ")"
		}
		if settings["vcs.modified"] == "true" {
			c += ", modified"
		}
		parts = append(parts, c)
	}
	return strings.Join(append(parts, info.GoVersion), ", ")
}
