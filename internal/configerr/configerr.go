// Package configerr is what tmbox's config decoders share: an error that
// names a setting by path, file and line, collecting and locating such
// errors, and helpers over go.yaml.in/yaml/v3 nodes.
package configerr

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/tmbox/tmbox/catalog"
)

// Error is one setting of a config file that is wrong. Path is the
// setting's path as written in the config, e.g.
// "platform.workloads.knative-serving/activator.replicas" or
// "addons[0].chart"; Line is its line in File (0 when unknown).
type Error struct {
	// File is the config file the setting was read from ("" when unknown).
	File string
	// Path is the setting's path, from the config's top-level key.
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
	var out []*Error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, m := range j.Unwrap() {
			out = append(out, Errors(m)...)
		}
		return out
	}
	var e *Error
	if errors.As(err, &e) {
		out = append(out, e)
	}
	return out
}

// List collects setting errors.
type List []error

// Add records a setting error at path.
func (l *List) Add(path string, format string, args ...any) {
	*l = append(*l, &Error{Path: path, Err: fmt.Errorf(format, args...)})
}

// Wrap records err as the error of the setting at path.
func (l *List) Wrap(path string, err error) {
	*l = append(*l, &Error{Path: path, Err: err})
}

// Join returns the errors joined, nil when there are none.
func (l List) Join() error { return errors.Join(l...) }

// Unjoin returns the members of an errors.Join, or err alone.
func Unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// Locate sets File and, where lines knows Path or one of its parents,
// Line on every *Error of errs, and returns them ordered by line (errors
// without a line last, in their order).
func Locate(errs []error, file string, lines map[string]int) error {
	type located struct {
		err  error
		line int
	}
	var out []located
	for _, err := range errs {
		var e *Error
		if !errors.As(err, &e) {
			out = append(out, located{err: err})
			continue
		}
		c := *e
		c.File = file
		if c.Line == 0 {
			c.Line = LineOf(lines, c.Path)
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

// LineOf returns the line of path, or of its nearest parent lines knows
// (a parent ends where path continues with "." or "["), 0 if none.
func LineOf(lines map[string]int, path string) int {
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

// Deref follows an alias to the node it names.
func Deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// IsNull reports whether n is an explicit or empty null.
func IsNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// Shape describes a node for an error: "a list", "a mapping", or the
// quoted scalar.
func Shape(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		if IsNull(n) {
			return "null"
		}
		return catalog.QuoteShort(n.Value)
	}
	return "an unsupported YAML node"
}

// Decoder is the part of a config decoder every section shares: the
// errors it found, and the line of every setting it saw, by path.
type Decoder struct {
	// Lines maps a setting's path to its line.
	Lines map[string]int
	// Errs are the errors found.
	Errs List
}

// NewDecoder returns an empty Decoder.
func NewDecoder() Decoder { return Decoder{Lines: map[string]int{}} }

// Fail records an error about node n (a key, or a value on its own line)
// at n's line.
func (d *Decoder) Fail(n *yaml.Node, path, format string, args ...any) {
	d.Errs = append(d.Errs, &Error{Path: path, Line: n.Line, Err: fmt.Errorf(format, args...)})
}

// Bad records an error about the value n of the setting at path, at the
// line of the setting's key (a mapping or list value starts below it).
func (d *Decoder) Bad(n *yaml.Node, path, format string, args ...any) {
	line, ok := d.Lines[path]
	if !ok {
		line = n.Line
	}
	d.Errs = append(d.Errs, &Error{Path: path, Line: line, Err: fmt.Errorf(format, args...)})
}

// Pairs calls fn for each key and value of a mapping node, refusing keys
// that are not text, merge keys (<<) and keys set twice, and records each
// key's line.
func (d *Decoder) Pairs(n *yaml.Node, path string, fn func(k, v *yaml.Node, p string)) {
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := Deref(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode || IsNull(k) {
			d.Fail(k, path, "a key must be text, not %s", Shape(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			d.Fail(k, path, "merge keys (<<) are not supported: write the keys out")
			continue
		}
		p := path + "." + k.Value
		if first, dup := seen[k.Value]; dup {
			d.Fail(k, p, "set twice (first at line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		d.Lines[p] = k.Line
		fn(k, v, p)
	}
}
