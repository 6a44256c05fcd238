package addons

import (
	"fmt"

	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/internal/configerr"
)

// Error is one add-on setting that is wrong, named by its path (from
// "addons"), file and line: configerr.Error.
type Error = configerr.Error

// Errors returns the *Error values in err: err itself, or the members of
// an errors.Join.
func Errors(err error) []*Error { return configerr.Errors(err) }

// errorList collects setting errors.
type errorList = configerr.List

// quote quotes a user's value for a message, shortened when long.
func quote(s string) string { return catalog.QuoteShort(s) }

// field returns the path of a field of the i-th add-on.
func field(i int, name string) string {
	if name == "" {
		return fmt.Sprintf("%s[%d]", Root, i)
	}
	return fmt.Sprintf("%s[%d].%s", Root, i, name)
}
