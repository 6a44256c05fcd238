package settings

import (
	"github.com/tmbox/tmbox/internal/configerr"
)

// Error is one setting that is wrong, named by its path (from
// "platform"), file and line: configerr.Error.
type Error = configerr.Error

// Errors returns the *Error values in err: err itself, or the members of
// an errors.Join.
func Errors(err error) []*Error { return configerr.Errors(err) }

// errorList collects setting errors.
type errorList = configerr.List
