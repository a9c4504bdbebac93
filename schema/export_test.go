package schema

import "io/fs"

// Files exposes the embedded migrations to the tests.
func Files() fs.FS { return files }
