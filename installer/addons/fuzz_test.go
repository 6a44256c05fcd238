package addons

import (
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzDecode checks Decode never panics and every error it returns is a
// located *Error.
func FuzzDecode(f *testing.F) {
	f.Add("addons:\n- name: a\n  chart: ./c\n  namespace: n\n  values: {x: [1, {y: &a z}], w: *a}\n  timeout: 90s\n")
	f.Add("addons: [{name: a, name: b}]\n")
	f.Add("addons:\n- {values: {<<: {a: 1}}}\n")
	f.Fuzz(func(t *testing.T, doc string) {
		var root yaml.Node
		if yaml.Unmarshal([]byte(doc), &root) != nil || len(root.Content) == 0 {
			return
		}
		var node *yaml.Node
		if m := root.Content[0]; m.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(m.Content); i += 2 {
				if m.Content[i].Value == "addons" {
					node = m.Content[i+1]
				}
			}
		}
		addons, err := Decode(node, "cfg.yaml")
		if err != nil {
			if addons != nil {
				t.Fatal("add-ons returned with an error")
			}
			for _, e := range Errors(err) {
				if e.File != "cfg.yaml" || e.Line == 0 {
					t.Fatalf("unlocated error: %v", e)
				}
			}
			return
		}
		if err := Validate(addons); err != nil {
			t.Fatalf("Decode returned add-ons Validate refuses: %v", err)
		}
	})
}
