package settings

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/internal/configerr"
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
	if len(d.Errs) > 0 {
		return Settings{}, configerr.Locate(d.Errs, file, d.Lines)
	}
	if err := s.Validate(); err != nil {
		return Settings{}, configerr.Locate(configerr.Unjoin(err), file, d.Lines)
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
	return configerr.Locate(configerr.Unjoin(err), file, d.Lines)
}

// walk decodes the platform: node (a document node holding it is
// unwrapped) into Settings, returning the decoder with its errors and the
// lines it saw.
func walk(node *yaml.Node) (Settings, *decoder) {
	var s Settings
	d := &decoder{Decoder: configerr.NewDecoder()}
	node = configerr.Deref(node)
	if node != nil && node.Kind == yaml.DocumentNode && len(node.Content) == 1 {
		node = configerr.Deref(node.Content[0])
	}
	if node == nil || configerr.IsNull(node) {
		return s, d
	}
	d.Lines[Root] = node.Line
	d.decode(node, reflect.ValueOf(&s).Elem(), Root)
	return s, d
}

// decoder walks a YAML node tree into a Go value by the value's type,
// recording the line of every setting it sees by path.
type decoder struct {
	configerr.Decoder
}

// decode decodes n into v (settable), reporting errors at path.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	n = configerr.Deref(n)
	if v.Type() == reflect.TypeFor[Value]() {
		d.value(n, v, path)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if configerr.IsNull(n) {
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
		if configerr.IsNull(n) {
			return
		}
		if n.Kind != yaml.ScalarNode {
			d.Bad(n, path, "want a text value, not %s", configerr.Shape(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			d.Bad(n, path, "want true or false, not %s", configerr.Shape(n))
			return
		}
		var b bool
		if err := n.Decode(&b); err != nil {
			d.Bad(n, path, "want true or false, not %s", configerr.Shape(n))
			return
		}
		v.SetBool(b)
	case reflect.Int32:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			d.Bad(n, path, "want a whole number, not %s", configerr.Shape(n))
			return
		}
		var i int64
		if err := n.Decode(&i); err != nil || i < math.MinInt32 || i > math.MaxInt32 {
			d.Bad(n, path, "%s is out of range for a whole number of at most %d", catalog.QuoteShort(n.Value), math.MaxInt32)
			return
		}
		v.SetInt(i)
	default:
		d.Bad(n, path, "tmbox cannot decode a %s here", v.Type())
	}
}

// value decodes a ConfigMap value: any scalar but null, as written.
func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	switch {
	case n.Kind != yaml.ScalarNode:
		d.Bad(n, path, "%s is not a ConfigMap value: want a string, number or boolean", configerr.Shape(n))
	case configerr.IsNull(n):
		d.Bad(n, path, "no value: write \"\" for an empty one")
	default:
		v.SetString(n.Value)
	}
}

// structure decodes a mapping into a struct by the fields' yaml tags.
func (d *decoder) structure(n *yaml.Node, v reflect.Value, path string) {
	if configerr.IsNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.Bad(n, path, "want a mapping, not %s", configerr.Shape(n))
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
	d.Pairs(n, path, func(k, val *yaml.Node, p string) {
		i, ok := fields[k.Value]
		if !ok {
			d.Fail(k, p, "unknown key %s (known at %s: %s)", catalog.QuoteShort(k.Value), path, strings.Join(known, ", "))
			return
		}
		d.decode(val, v.Field(i), p)
	})
}

// mapping decodes a mapping with text keys into a Go map.
func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	if configerr.IsNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.Bad(n, path, "want a mapping, not %s", configerr.Shape(n))
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	d.Pairs(n, path, func(k, val *yaml.Node, p string) {
		e := reflect.New(v.Type().Elem()).Elem()
		if val := configerr.Deref(val); v.Type().Elem().Kind() == reflect.String && v.Type().Elem() != reflect.TypeFor[Value]() && configerr.IsNull(val) {
			d.Bad(val, p, "no value: write \"\" for an empty one")
			return
		}
		d.decode(val, e, p)
		m.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), e)
	})
	v.Set(m)
}

// sequence decodes a sequence into a slice.
func (d *decoder) sequence(n *yaml.Node, v reflect.Value, path string) {
	if configerr.IsNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.Bad(n, path, "want a list, not %s", configerr.Shape(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		d.Lines[p] = configerr.Deref(item).Line
		if v.Type().Elem().Kind() == reflect.String && configerr.IsNull(configerr.Deref(item)) {
			d.Bad(configerr.Deref(item), p, "no value")
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
	if configerr.IsNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.Bad(n, path, "want a mapping, not %s", configerr.Shape(n))
		return
	}
	before := len(d.Errs)
	d.noDuplicates(n, path)
	if len(d.Errs) > before {
		return
	}
	m := map[string]any{}
	if err := n.Decode(&m); err != nil {
		d.Bad(n, path, "%v", err)
		return
	}
	v.Set(reflect.ValueOf(m))
}

// noDuplicates refuses keys set twice in any mapping under n, recording
// the lines of what it walks.
func (d *decoder) noDuplicates(n *yaml.Node, path string) {
	n = configerr.Deref(n)
	switch n.Kind {
	case yaml.MappingNode:
		d.Pairs(n, path, func(_, v *yaml.Node, p string) { d.noDuplicates(v, p) })
	case yaml.SequenceNode:
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.Lines[p] = configerr.Deref(item).Line
			d.noDuplicates(item, p)
		}
	}
}
