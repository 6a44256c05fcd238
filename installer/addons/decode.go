package addons

import (
	"fmt"
	"time"

	"github.com/tmbox/tmbox/internal/configerr"
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
	if len(d.Errs) > 0 {
		return nil, configerr.Locate(d.Errs, file, d.Lines)
	}
	if err := Validate(addons); err != nil {
		return nil, configerr.Locate(configerr.Unjoin(err), file, d.Lines)
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
	return configerr.Locate(configerr.Unjoin(err), file, d.Lines)
}

// decoder walks the addons: node, recording errors and the line of every
// setting it sees by path.
type decoder struct {
	configerr.Decoder
}

// walk decodes the addons: node into add-ons.
func walk(node *yaml.Node) ([]Addon, *decoder) {
	d := &decoder{Decoder: configerr.NewDecoder()}
	node = configerr.Deref(node)
	if node != nil && node.Kind == yaml.DocumentNode && len(node.Content) == 1 {
		node = configerr.Deref(node.Content[0])
	}
	if node == nil || configerr.IsNull(node) {
		return nil, d
	}
	d.Lines[Root] = node.Line
	if node.Kind != yaml.SequenceNode {
		d.Fail(node, Root, "want a list of add-ons, not %s", configerr.Shape(node))
		return nil, d
	}
	addons := make([]Addon, 0, len(node.Content))
	for i, item := range node.Content {
		item = configerr.Deref(item)
		p := field(i, "")
		d.Lines[p] = item.Line
		if item.Kind != yaml.MappingNode {
			d.Fail(item, p, "want a mapping (name, chart, namespace, …), not %s", configerr.Shape(item))
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
	d.Pairs(n, path, func(k, v *yaml.Node, p string) {
		v = configerr.Deref(v)
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
			d.Fail(k, p, "unknown key %s (known at %s: %s)", quote(k.Value), path, knownKeys)
		}
	})
	return a
}

// text decodes a scalar as written; null is empty.
func (d *decoder) text(n *yaml.Node, path string) string {
	if configerr.IsNull(n) {
		return ""
	}
	if n.Kind != yaml.ScalarNode {
		d.Bad(n, path, "want a text value, not %s", configerr.Shape(n))
		return ""
	}
	return n.Value
}

// texts decodes a list of scalars; null is none.
func (d *decoder) texts(n *yaml.Node, path string) []string {
	if configerr.IsNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.Bad(n, path, "want a list of file paths, not %s", configerr.Shape(n))
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for i, item := range n.Content {
		item = configerr.Deref(item)
		p := fmt.Sprintf("%s[%d]", path, i)
		d.Lines[p] = item.Line
		switch {
		case configerr.IsNull(item):
			d.Fail(item, p, "no value: want a file path")
		case item.Kind != yaml.ScalarNode:
			d.Fail(item, p, "want a file path, not %s", configerr.Shape(item))
		default:
			out = append(out, item.Value)
		}
	}
	return out
}

// boolean decodes true or false; null is unset.
func (d *decoder) boolean(n *yaml.Node, path string) *bool {
	if configerr.IsNull(n) {
		return nil
	}
	var b bool
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
		d.Bad(n, path, "want true or false, not %s", configerr.Shape(n))
		return nil
	}
	return &b
}

// duration decodes a positive Go duration string; null is unset.
func (d *decoder) duration(n *yaml.Node, path string) Duration {
	if configerr.IsNull(n) {
		return 0
	}
	if n.Kind != yaml.ScalarNode {
		d.Bad(n, path, "want a duration such as 90s or 5m, not %s", configerr.Shape(n))
		return 0
	}
	if n.ShortTag() == "!!int" || n.ShortTag() == "!!float" {
		d.Bad(n, path, "%s has no unit: want a duration such as 90s or 5m", quote(n.Value))
		return 0
	}
	v, err := parseDuration(n.Value)
	if err != nil {
		d.Bad(n, path, "%v", err)
		return 0
	}
	if v <= 0 {
		d.Bad(n, path, "%s: want a positive duration (leave timeout out for the default %s)", quote(n.Value), DefaultTimeout)
		return 0
	}
	return v
}

// values decodes an add-on's inline values: a mapping of text keys, any
// YAML below it (keys set twice anywhere are refused); null is none.
func (d *decoder) values(n *yaml.Node, path string) map[string]any {
	if configerr.IsNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.Bad(n, path, "want a mapping of chart values, not %s", configerr.Shape(n))
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
	n = configerr.Deref(n)
	if *budget--; *budget < 0 {
		if *budget == -1 {
			d.Bad(n, path, "the values expand to more than %d YAML nodes", maxValueNodes)
		}
		return nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		d.Pairs(n, path, func(k, v *yaml.Node, p string) {
			m[k.Value] = d.value(v, p, budget)
		})
		return m
	case yaml.SequenceNode:
		s := make([]any, len(n.Content))
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.Lines[p] = configerr.Deref(item).Line
			s[i] = d.value(item, p, budget)
		}
		return s
	case yaml.ScalarNode:
		var x any
		if err := n.Decode(&x); err != nil {
			d.Fail(n, path, "%v", err)
			return nil
		}
		if _, ok := x.(time.Time); ok {
			return n.Value
		}
		return x
	}
	d.Fail(n, path, "unsupported YAML node")
	return nil
}
