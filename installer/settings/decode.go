package settings

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/tmbox/tmbox/catalog"
)

// Root is the path of the settings in an InstallConfig: every Error's
// Path starts with it.
const Root = "platform"

// Decode decodes the platform: mapping node of an InstallConfig strictly:
// an unknown key (the error lists the known ones at that level), a key
// set twice, and a value of the wrong shape (a list or mapping where a
// ConfigMap value belongs, text where a number belongs) are errors, each
// as "FILE:LINE: platform.x.y: message". It then runs Validate and
// attaches to each of its errors the line of the setting at its Path (or
// of the nearest enclosing setting). A nil or null node is the zero
// Settings. File paths in the settings are kept as written.
//
// The errors are *Error values joined with errors.Join, in line order.
func Decode(node *yaml.Node, file string) (Settings, error) {
	s, d := walk(node)
	if len(d.errs) > 0 {
		return Settings{}, locate(d.errs, file, d.lines)
	}
	if err := s.Validate(); err != nil {
		return Settings{}, locate(unjoin(err), file, d.lines)
	}
	return s, nil
}

// Locate attaches file and the lines of node (the platform: mapping node
// Decode read) to the *Error values in err, e.g. to Check's errors about
// settings Decode returned, and returns them in line order. Errors that
// are not *Error are kept as they are.
func Locate(err error, node *yaml.Node, file string) error {
	if err == nil {
		return nil
	}
	_, d := walk(node)
	return locate(unjoin(err), file, d.lines)
}

// walk decodes the platform: node (a document node holding it is
// unwrapped) into Settings, returning the decoder with its errors and the
// lines it saw.
func walk(node *yaml.Node) (Settings, *decoder) {
	var s Settings
	d := &decoder{lines: map[string]int{}}
	node = deref(node)
	if node != nil && node.Kind == yaml.DocumentNode && len(node.Content) == 1 {
		node = deref(node.Content[0])
	}
	if node == nil || isNull(node) {
		return s, d
	}
	d.lines[Root] = node.Line
	d.decode(node, reflect.ValueOf(&s).Elem(), Root)
	return s, d
}

// unjoin returns the members of an errors.Join, or err alone.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// decoder walks a YAML node tree into a Go value by the value's type,
// recording the line of every setting it sees by path.
type decoder struct {
	lines map[string]int
	errs  errorList
}

// fail records a structural error about key node n at n's line.
func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{Path: path, Line: n.Line, Err: fmt.Errorf(format, args...)})
}

// bad records an error about the value n of the setting at path, at the
// line of the setting's key (a mapping or list value starts below it).
func (d *decoder) bad(n *yaml.Node, path, format string, args ...any) {
	line, ok := d.lines[path]
	if !ok {
		line = n.Line
	}
	d.errs = append(d.errs, &Error{Path: path, Line: line, Err: fmt.Errorf(format, args...)})
}

// decode decodes n into v (settable), reporting errors at path.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	n = deref(n)
	if v.Type() == reflect.TypeFor[Value]() {
		d.value(n, v, path)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if isNull(n) {
			return
		}
		p := reflect.New(v.Type().Elem())
		d.decode(n, p.Elem(), path)
		v.Set(p)
	case reflect.Struct:
		d.structure(n, v, path)
	case reflect.Map:
		if v.Type().Elem() == reflect.TypeFor[any]() {
			d.generic(n, v, path)
			return
		}
		d.mapping(n, v, path)
	case reflect.Slice:
		d.sequence(n, v, path)
	case reflect.String:
		if isNull(n) {
			return
		}
		if n.Kind != yaml.ScalarNode {
			d.bad(n, path, "want a text value, not %s", shape(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			d.bad(n, path, "want true or false, not %s", shape(n))
			return
		}
		var b bool
		if err := n.Decode(&b); err != nil {
			d.bad(n, path, "want true or false, not %s", shape(n))
			return
		}
		v.SetBool(b)
	case reflect.Int32:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			d.bad(n, path, "want a whole number, not %s", shape(n))
			return
		}
		var i int64
		if err := n.Decode(&i); err != nil || i < math.MinInt32 || i > math.MaxInt32 {
			d.bad(n, path, "%s is out of range for a whole number of at most %d", catalog.QuoteShort(n.Value), math.MaxInt32)
			return
		}
		v.SetInt(i)
	default:
		d.bad(n, path, "tmbox cannot decode a %s here", v.Type())
	}
}

// value decodes a ConfigMap value: any scalar but null, as written.
func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	switch {
	case n.Kind != yaml.ScalarNode:
		d.bad(n, path, "%s is not a ConfigMap value: want a string, number or boolean", shape(n))
	case isNull(n):
		d.bad(n, path, "no value: write \"\" for an empty one")
	default:
		v.SetString(n.Value)
	}
}

// structure decodes a mapping into a struct by the fields' yaml tags.
func (d *decoder) structure(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.bad(n, path, "want a mapping, not %s", shape(n))
		return
	}
	fields := map[string]int{}
	var known []string
	for i := 0; i < v.NumField(); i++ {
		name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		fields[name] = i
		known = append(known, name)
	}
	sort.Strings(known)
	d.pairs(n, path, func(k, val *yaml.Node, p string) {
		i, ok := fields[k.Value]
		if !ok {
			d.fail(k, p, "unknown key %s (known at %s: %s)", catalog.QuoteShort(k.Value), path, strings.Join(known, ", "))
			return
		}
		d.decode(val, v.Field(i), p)
	})
}

// mapping decodes a mapping with text keys into a Go map.
func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.bad(n, path, "want a mapping, not %s", shape(n))
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	d.pairs(n, path, func(k, val *yaml.Node, p string) {
		e := reflect.New(v.Type().Elem()).Elem()
		if val := deref(val); v.Type().Elem().Kind() == reflect.String && v.Type().Elem() != reflect.TypeFor[Value]() && isNull(val) {
			d.bad(val, p, "no value: write \"\" for an empty one")
			return
		}
		d.decode(val, e, p)
		m.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), e)
	})
	v.Set(m)
}

// pairs calls fn for each key and value of a mapping node, refusing keys
// that are not text and keys set twice, and records each key's line.
func (d *decoder) pairs(n *yaml.Node, path string, fn func(k, v *yaml.Node, p string)) {
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := deref(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode || isNull(k) {
			d.fail(k, path, "a key must be text, not %s", shape(k))
			continue
		}
		p := path + "." + k.Value
		if first, dup := seen[k.Value]; dup {
			d.fail(k, p, "set twice (first at line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		d.lines[p] = k.Line
		fn(k, val, p)
	}
}

// sequence decodes a sequence into a slice.
func (d *decoder) sequence(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.bad(n, path, "want a list, not %s", shape(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		d.lines[p] = deref(item).Line
		if v.Type().Elem().Kind() == reflect.String && isNull(deref(item)) {
			d.bad(deref(item), p, "no value")
			continue
		}
		d.decode(item, s.Index(i), p)
	}
	v.Set(s)
}

// generic decodes a mapping into a map[string]any (a Kubernetes object
// fragment: affinity, a toleration), refusing keys set twice anywhere in
// it; its shape is checked by Validate.
func (d *decoder) generic(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.bad(n, path, "want a mapping, not %s", shape(n))
		return
	}
	before := len(d.errs)
	d.noDuplicates(n, path)
	if len(d.errs) > before {
		return
	}
	m := map[string]any{}
	if err := n.Decode(&m); err != nil {
		d.bad(n, path, "%v", err)
		return
	}
	v.Set(reflect.ValueOf(m))
}

// noDuplicates refuses keys set twice in any mapping under n, recording
// the lines of what it walks.
func (d *decoder) noDuplicates(n *yaml.Node, path string) {
	n = deref(n)
	switch n.Kind {
	case yaml.MappingNode:
		d.pairs(n, path, func(_, v *yaml.Node, p string) { d.noDuplicates(v, p) })
	case yaml.SequenceNode:
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.lines[p] = deref(item).Line
			d.noDuplicates(item, p)
		}
	}
}

// deref follows an alias to the node it names.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// isNull reports whether n is an explicit or empty null.
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// shape describes a node for an error: "a list", "a mapping", or the
// quoted scalar.
func shape(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		if isNull(n) {
			return "null"
		}
		return catalog.QuoteShort(n.Value)
	}
	return "an unsupported YAML node"
}
