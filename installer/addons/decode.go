package addons

import (
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"
)

// maxValueNodes bounds the YAML nodes one add-on's inline values may
// expand to (aliases included), against alias bombs.
const maxValueNodes = 1 << 20

// Decode decodes the addons: sequence node of an InstallConfig strictly:
// an entry that is not a mapping, an unknown key (the error lists the
// known ones), a key set twice (anywhere, inline values included), and a
// value of the wrong shape (a list where text belongs, text where true or
// false belongs, a duration that is not one) are errors, each as
// "FILE:LINE: addons[i].key: message". It then runs Validate and attaches
// to each of its errors the line of the setting at its Path (or of the
// nearest enclosing one). A nil or null node is no add-ons; a document
// node holding the sequence is unwrapped. File paths are kept as written.
//
// The errors are *Error values joined with errors.Join, in line order.
func Decode(node *yaml.Node, file string) ([]Addon, error) {
	addons, d := walk(node)
	if len(d.errs) > 0 {
		return nil, locate(d.errs, file, d.lines)
	}
	if err := Validate(addons); err != nil {
		return nil, locate(unjoin(err), file, d.lines)
	}
	return addons, nil
}

// Locate attaches file and the lines of node (the addons: node Decode
// read) to the *Error values in err, e.g. to Load's errors about add-ons
// Decode returned, and returns them in line order. Errors that are not
// *Error are kept as they are.
func Locate(err error, node *yaml.Node, file string) error {
	if err == nil {
		return nil
	}
	_, d := walk(node)
	return locate(unjoin(err), file, d.lines)
}

// decoder walks the addons: node, recording errors and the line of every
// setting it sees by path.
type decoder struct {
	lines map[string]int
	errs  errorList
}

// walk decodes the addons: node into add-ons.
func walk(node *yaml.Node) ([]Addon, *decoder) {
	d := &decoder{lines: map[string]int{}}
	node = deref(node)
	if node != nil && node.Kind == yaml.DocumentNode && len(node.Content) == 1 {
		node = deref(node.Content[0])
	}
	if node == nil || isNull(node) {
		return nil, d
	}
	d.lines[Root] = node.Line
	if node.Kind != yaml.SequenceNode {
		d.fail(node, Root, "want a list of add-ons, not %s", shape(node))
		return nil, d
	}
	addons := make([]Addon, 0, len(node.Content))
	for i, item := range node.Content {
		item = deref(item)
		p := field(i, "")
		d.lines[p] = item.Line
		if item.Kind != yaml.MappingNode {
			d.fail(item, p, "want a mapping (name, chart, namespace, …), not %s", shape(item))
			continue
		}
		addons = append(addons, d.addon(item, p))
	}
	return addons, d
}

// knownKeys lists the keys of an add-on for the unknown-key error.
const knownKeys = "chart, digest, name, namespace, timeout, values, valuesFiles, version, wait"

// addon decodes one add-on mapping.
func (d *decoder) addon(n *yaml.Node, path string) Addon {
	var a Addon
	d.pairs(n, path, func(k, v *yaml.Node, p string) {
		v = deref(v)
		switch k.Value {
		case "name":
			a.Name = d.text(v, p)
		case "chart":
			a.Chart = d.text(v, p)
		case "version":
			a.Version = d.text(v, p)
		case "digest":
			a.Digest = d.text(v, p)
		case "namespace":
			a.Namespace = d.text(v, p)
		case "valuesFiles":
			a.ValuesFiles = d.texts(v, p)
		case "values":
			a.Values = d.values(v, p)
		case "wait":
			a.Wait = d.boolean(v, p)
		case "timeout":
			a.Timeout = d.duration(v, p)
		default:
			d.fail(k, p, "unknown key %s (known at %s: %s)", quote(k.Value), path, knownKeys)
		}
	})
	return a
}

// fail records an error about node n (a key, or a value on its own line)
// at n's line.
func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{Path: path, Line: n.Line, Err: fmt.Errorf(format, args...)})
}

// bad records an error about the value of the setting at path, at the
// line of the setting's key (a list or mapping value starts below it).
func (d *decoder) bad(n *yaml.Node, path, format string, args ...any) {
	line, ok := d.lines[path]
	if !ok {
		line = n.Line
	}
	d.errs = append(d.errs, &Error{Path: path, Line: line, Err: fmt.Errorf(format, args...)})
}

// pairs calls fn for each key and value of a mapping node, refusing keys
// that are not text and keys set twice, and records each key's line.
func (d *decoder) pairs(n *yaml.Node, path string, fn func(k, v *yaml.Node, p string)) {
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode || isNull(k) {
			d.fail(k, path, "a key must be text, not %s", shape(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			d.fail(k, path, "merge keys (<<) are not supported: write the keys out")
			continue
		}
		p := path + "." + k.Value
		if first, dup := seen[k.Value]; dup {
			d.fail(k, p, "set twice (first at line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		d.lines[p] = k.Line
		fn(k, v, p)
	}
}

// text decodes a scalar as written; null is empty.
func (d *decoder) text(n *yaml.Node, path string) string {
	if isNull(n) {
		return ""
	}
	if n.Kind != yaml.ScalarNode {
		d.bad(n, path, "want a text value, not %s", shape(n))
		return ""
	}
	return n.Value
}

// texts decodes a list of scalars; null is none.
func (d *decoder) texts(n *yaml.Node, path string) []string {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.bad(n, path, "want a list of file paths, not %s", shape(n))
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for i, item := range n.Content {
		item = deref(item)
		p := fmt.Sprintf("%s[%d]", path, i)
		d.lines[p] = item.Line
		switch {
		case isNull(item):
			d.fail(item, p, "no value: want a file path")
		case item.Kind != yaml.ScalarNode:
			d.fail(item, p, "want a file path, not %s", shape(item))
		default:
			out = append(out, item.Value)
		}
	}
	return out
}

// boolean decodes true or false; null is unset.
func (d *decoder) boolean(n *yaml.Node, path string) *bool {
	if isNull(n) {
		return nil
	}
	var b bool
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
		d.bad(n, path, "want true or false, not %s", shape(n))
		return nil
	}
	return &b
}

// duration decodes a positive Go duration string; null is unset.
func (d *decoder) duration(n *yaml.Node, path string) Duration {
	if isNull(n) {
		return 0
	}
	if n.Kind != yaml.ScalarNode {
		d.bad(n, path, "want a duration such as 90s or 5m, not %s", shape(n))
		return 0
	}
	if n.ShortTag() == "!!int" || n.ShortTag() == "!!float" {
		d.bad(n, path, "%s has no unit: want a duration such as 90s or 5m", quote(n.Value))
		return 0
	}
	v, err := parseDuration(n.Value)
	if err != nil {
		d.bad(n, path, "%v", err)
		return 0
	}
	if v <= 0 {
		d.bad(n, path, "%s: want a positive duration (leave timeout out for the default %s)", quote(n.Value), DefaultTimeout)
		return 0
	}
	return v
}

// values decodes an add-on's inline values: a mapping of text keys, any
// YAML below it (keys set twice anywhere are refused); null is none.
func (d *decoder) values(n *yaml.Node, path string) map[string]any {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.bad(n, path, "want a mapping of chart values, not %s", shape(n))
		return nil
	}
	budget := maxValueNodes
	v, ok := d.value(n, path, &budget).(map[string]any)
	if !ok {
		return nil
	}
	return v
}

// value converts a values node into the Go value Helm expects (mappings
// as map[string]any, lists as []any, scalars as YAML types them, a
// timestamp as its text), recording errors.
func (d *decoder) value(n *yaml.Node, path string, budget *int) any {
	n = deref(n)
	if *budget--; *budget < 0 {
		if *budget == -1 {
			d.bad(n, path, "the values expand to more than %d YAML nodes", maxValueNodes)
		}
		return nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		d.pairs(n, path, func(k, v *yaml.Node, p string) {
			m[k.Value] = d.value(v, p, budget)
		})
		return m
	case yaml.SequenceNode:
		s := make([]any, len(n.Content))
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.lines[p] = deref(item).Line
			s[i] = d.value(item, p, budget)
		}
		return s
	case yaml.ScalarNode:
		var x any
		if err := n.Decode(&x); err != nil {
			d.fail(n, path, "%v", err)
			return nil
		}
		if _, ok := x.(time.Time); ok {
			return n.Value
		}
		return x
	}
	d.fail(n, path, "unsupported YAML node")
	return nil
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
		return quote(n.Value)
	}
	return "an unsupported YAML node"
}
