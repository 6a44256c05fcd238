package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

var (
	// registryRef matches a registry-qualified image reference standing
	// alone in a string: host.domain[:port]/path[:tag][@sha256:digest].
	registryRef = regexp.MustCompile(`^[a-z0-9.-]+\.[a-z]{2,}(:[0-9]+)?/[a-z0-9._/-]+(:[A-Za-z0-9_.-]+)?(@sha256:[0-9a-f]{64})?$`)
	// imageLine matches "image: X" inside a multi-line string (templates
	// such as Istio's injector carry images that way).
	imageLine = regexp.MustCompile(`(?m)^\s*(?:-\s*)?image:\s*"?([^"\s{}]+)"?\s*$`)
)

// ImagesIn returns every image reference in a multi-document manifest, as
// written (ko:// placeholders included), sorted and unique. It finds
// images where Kubernetes objects hide them: "image" fields (containers, init
// containers, any CRD), env values whose name ends in _IMAGE, registry-
// qualified references standing alone in any string (ConfigMap values such
// as Knative's queue-sidecar-image), and "image:" lines inside multi-line
// strings (templates). Templated values ({{ … }}) and "auto" are skipped.
func ImagesIn(manifest []byte) ([]string, error) {
	dec := yaml.NewDecoder(bytes.NewReader(manifest))
	found := map[string]bool{}
	for {
		var doc any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("parse manifest: %w", err)
		}
		walkImages(doc, "", found)
	}
	out := make([]string, 0, len(found))
	for img := range found {
		out = append(out, img)
	}
	slices.Sort(out)
	return out, nil
}

func walkImages(node any, key string, found map[string]bool) {
	switch n := node.(type) {
	case map[string]any:
		if name, ok := n["name"].(string); ok && strings.HasSuffix(name, "_IMAGE") {
			if v, ok := n["value"].(string); ok && strings.TrimSpace(v) != "" {
				found[strings.TrimSpace(v)] = true
			}
		}
		for k, v := range n {
			walkImages(v, k, found)
		}
	case []any:
		for _, v := range n {
			walkImages(v, key, found)
		}
	case string:
		s := strings.TrimSpace(n)
		switch {
		case key == "image":
			if s != "" && s != "auto" && !strings.Contains(s, "{{") {
				found[s] = true
			}
		case strings.HasPrefix(s, "ko://") && !strings.ContainsAny(s, " \n"):
			found[s] = true
		case registryRef.MatchString(s) && isTaggedOrDigested(s):
			found[s] = true
		case strings.Contains(s, "\n"):
			for _, m := range imageLine.FindAllStringSubmatch(s, -1) {
				if m[1] != "auto" {
					found[m[1]] = true
				}
			}
		}
	}
}

func isTaggedOrDigested(ref string) bool {
	last := ref[strings.LastIndex(ref, "/")+1:]
	return strings.Contains(last, ":") || strings.Contains(last, "@")
}
