package addons

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/tmbox/tmbox/catalog"
)

// Error is one add-on setting that is wrong. Path is the setting's path
// as written in the config, e.g. "addons[0].chart"; Line is its line in
// File (0 when unknown: add-ons not read by Decode, errors of Load that
// were not passed through Locate).
type Error struct {
	// File is the config file the add-on was read from ("" when unknown).
	File string
	// Path is the setting's path, starting at "addons".
	Path string
	// Line is the setting's line in File, 0 when unknown.
	Line int
	// Err says what is wrong.
	Err error
}

// Error renders the error as "FILE:LINE: PATH: MESSAGE" when the file and
// line are known, "FILE: PATH: MESSAGE" when only the file is, and
// "PATH: MESSAGE" otherwise.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Path)
	b.WriteString(": ")
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	} else {
		b.WriteString("invalid")
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Errors returns the *Error values in err: err itself, or the members of
// an errors.Join. Other errors are left out.
func Errors(err error) []*Error {
	if err == nil {
		return nil
	}
	if e, ok := err.(*Error); ok {
		return []*Error{e}
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []*Error
		for _, m := range j.Unwrap() {
			out = append(out, Errors(m)...)
		}
		return out
	}
	var e *Error
	if errors.As(err, &e) {
		return []*Error{e}
	}
	return nil
}

// errorList collects setting errors.
type errorList []error

// add records an error of the setting at path.
func (l *errorList) add(path, format string, args ...any) {
	*l = append(*l, &Error{Path: path, Err: fmt.Errorf(format, args...)})
}

// join returns the errors joined, nil when there are none.
func (l errorList) join() error { return errors.Join(l...) }

// unjoin returns the members of an errors.Join, or err alone.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// locate sets File and, where lines knows Path or one of its parents,
// Line on every *Error of errs (copies: the originals are not changed),
// and returns them joined in line order (errors without a line last, in
// their order).
func locate(errs []error, file string, lines map[string]int) error {
	type located struct {
		err  error
		line int
	}
	out := make([]located, 0, len(errs))
	for _, err := range errs {
		var e *Error
		if !errors.As(err, &e) {
			out = append(out, located{err: err})
			continue
		}
		c := *e
		c.File = file
		if c.Line == 0 {
			c.Line = lineOf(lines, c.Path)
		}
		out = append(out, located{err: &c, line: c.Line})
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].line, out[j].line
		if a == 0 || b == 0 {
			return a != 0 && b == 0
		}
		return a < b
	})
	joined := make([]error, len(out))
	for i, o := range out {
		joined[i] = o.err
	}
	return errors.Join(joined...)
}

// lineOf returns the line of path, or of its nearest parent lines knows
// (a parent ends where path continues with "." or "["), 0 if none.
func lineOf(lines map[string]int, path string) int {
	if l, ok := lines[path]; ok {
		return l
	}
	for i := len(path) - 1; i > 0; i-- {
		if path[i] != '.' && path[i] != '[' {
			continue
		}
		if l, ok := lines[path[:i]]; ok {
			return l
		}
	}
	return 0
}

// quote quotes a user's value for a message, shortened when long.
func quote(s string) string { return catalog.QuoteShort(s) }

// field returns the path of a field of the i-th add-on.
func field(i int, name string) string {
	if name == "" {
		return fmt.Sprintf("%s[%d]", Root, i)
	}
	return fmt.Sprintf("%s[%d].%s", Root, i, name)
}
