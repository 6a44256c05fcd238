package apply

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
)

// RewriteObjectImages rewrites every image reference anywhere in an object
// (containers, env values, ConfigMap data, annotations).
func RewriteObjectImages(u *unstructured.Unstructured, mapping map[string]string) error {
	raw, err := json.Marshal(u.Object)
	if err != nil {
		return fmt.Errorf("%s: %w", KeyOf(u), err)
	}
	out := RewriteImages(raw, mapping)
	if bytes.Equal(out, raw) {
		return nil
	}
	obj := map[string]any{}
	if err := utiljson.Unmarshal(out, &obj); err != nil {
		return fmt.Errorf("%s: %w", KeyOf(u), err)
	}
	u.Object = obj
	return nil
}

// refChar reports whether b can be part of an image reference, so a
// replacement only matches whole references.
func refChar(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || strings.IndexByte("._-:@/", b) >= 0
}

// RewriteImages replaces every whole occurrence of mapping's keys in data —
// container and init-container images, env values, ConfigMap values alike —
// with their values. Longer references are matched first, and a key never
// matches inside a longer reference.
func RewriteImages(data []byte, mapping map[string]string) []byte {
	if len(mapping) == 0 {
		return data
	}
	keys := make([]string, 0, len(mapping))
	for k := range mapping {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return len(b) - len(a) })
	for _, k := range keys {
		data = replaceWhole(data, []byte(k), []byte(mapping[k]))
	}
	return data
}

func replaceWhole(data, old, repl []byte) []byte {
	if !bytes.Contains(data, old) {
		return data
	}
	var out bytes.Buffer
	out.Grow(len(data))
	for {
		i := bytes.Index(data, old)
		if i < 0 {
			out.Write(data)
			return out.Bytes()
		}
		end := i + len(old)
		whole := (i == 0 || !refChar(data[i-1])) && (end == len(data) || !refChar(data[end]))
		out.Write(data[:i])
		if whole {
			out.Write(repl)
		} else {
			out.Write(old)
		}
		data = data[end:]
	}
}
