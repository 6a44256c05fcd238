package apply

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// driftedFields lists the fields of desired that another manager took
// over since tmbox applied it: with server-side apply, a client that
// changes a field tmbox set (kubectl edit, a patch) becomes its owner, so
// a field of tmbox's configuration owned by someone else is drift.
// Metadata and status are not configuration tmbox keeps.
//
// Objects that controllers legitimately rewrite (webhook configurations
// and CRDs get their caBundle, APIServices theirs, Secrets their data) are
// not checked: re-applying them would fight those controllers.
func driftedFields(managed []metav1.ManagedFieldsEntry, desired *unstructured.Unstructured) []string {
	switch desired.GetKind() {
	case "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "CustomResourceDefinition", "APIService", "Secret":
		return nil
	}
	var out []string
	for _, mf := range managed {
		if mf.Manager == FieldManager || mf.Subresource != "" || mf.FieldsV1 == nil {
			continue
		}
		var fields map[string]any
		if err := json.Unmarshal(mf.FieldsV1.Raw, &fields); err != nil {
			continue
		}
		for k, v := range fields {
			if k == "f:metadata" || k == "f:status" || !strings.HasPrefix(k, "f:") {
				continue
			}
			name := strings.TrimPrefix(k, "f:")
			if child, ok := desired.Object[name]; ok {
				for _, p := range ownedIn(v, child, name) {
					out = append(out, fmt.Sprintf("%s (by %s)", p, mf.Manager))
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// ownedIn walks a fieldsV1 subtree alongside the desired value at path
// and returns the paths of leaves present in both.
func ownedIn(fields any, desired any, path string) []string {
	if strings.HasSuffix(path, ".caBundle") {
		return nil // filled in by a controller
	}
	m, ok := fields.(map[string]any)
	if !ok || len(m) == 0 {
		return []string{path}
	}
	var out []string
	for k, sub := range m {
		switch {
		case k == ".":
			out = append(out, path)
		case strings.HasPrefix(k, "f:"):
			dm, ok := desired.(map[string]any)
			if !ok {
				continue
			}
			name := strings.TrimPrefix(k, "f:")
			if child, ok := dm[name]; ok {
				out = append(out, ownedIn(sub, child, path+"."+name)...)
			}
		case strings.HasPrefix(k, "k:"):
			list, ok := desired.([]any)
			if !ok {
				continue
			}
			var key map[string]any
			if err := json.Unmarshal([]byte(strings.TrimPrefix(k, "k:")), &key); err != nil {
				continue
			}
			for _, el := range list {
				if matchesKey(el, key) {
					out = append(out, ownedIn(sub, el, path+"["+strings.TrimPrefix(k, "k:")+"]")...)
				}
			}
		case strings.HasPrefix(k, "v:"):
			if list, ok := desired.([]any); ok {
				want := strings.TrimPrefix(k, "v:")
				for _, el := range list {
					if raw, err := json.Marshal(el); err == nil && string(raw) == want {
						out = append(out, path+"["+want+"]")
					}
				}
			}
		}
	}
	return out
}

// matchesKey reports whether a list element has every key field's value.
func matchesKey(el any, key map[string]any) bool {
	m, ok := el.(map[string]any)
	if !ok {
		return false
	}
	for k, v := range key {
		if fmt.Sprint(m[k]) != fmt.Sprint(v) {
			return false
		}
	}
	return true
}
