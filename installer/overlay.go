package installer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer/apply"
)

// MaxOverlaySize is the largest Istio overlay tmbox reads, in bytes.
const MaxOverlaySize int64 = 1 << 20

// istioNamespace is the namespace tmbox installs Istio's control plane in;
// an overlay cannot move it.
const istioNamespace = "istio-system"

// imageKeys are the IstioOperator fields that choose an image: a hub, a tag
// or an image, at any depth of spec (spec.hub, spec.values.pilot.image,
// spec.values.global.proxy.image, spec.components.pilot.tag, …).
var imageKeys = []string{"hub", "tag", "image"}

// checkOverlay refuses an Istio overlay tmbox would not honour as written:
// one for a release whose Istio is not the compiled-in one, one that is not
// a single IstioOperator, one that moves Istio out of istio-system, and
// one that chooses an image, since what runs is what the catalog pins. The
// render that follows (objectsFor, before any write) proves that Istio
// renders with it, and that every pod template it produces runs a pinned
// image.
func checkOverlay(overlay string, rel *catalog.Release) error {
	if overlay == "" {
		return nil
	}
	istio, _ := rel.Component(catalog.Istio)
	if istio.Source != catalog.SourceCompiledIn {
		return &SettingError{Setting: "istio-overlay", Err: fmt.Errorf("--istio-overlay applies to the compiled-in Istio; release %s installs Istio %s from its pinned manifests", rel.Name, istio.Version)}
	}
	if err := checkOverlayShape(overlay); err != nil {
		return &SettingError{Setting: "istio-overlay", Err: err}
	}
	return nil
}

// CheckOverlay checks an Istio overlay against a release of a catalog
// ("" catalogFile: the embedded one; "" release: the latest) as Install
// does before rendering: the release's Istio must be the compiled-in one,
// and the overlay a single IstioOperator that chooses no image and keeps
// Istio's namespace. It reads the overlay file only; nothing renders, no
// cluster is contacted. Errors are *SettingError of "istio-overlay".
func CheckOverlay(path, release, catalogFile string) error {
	cat, err := catalog.Load(catalogFile)
	if err != nil {
		return &SettingError{Setting: "catalog", Err: err}
	}
	rel := cat.Latest()
	if release != "" {
		if rel, err = cat.Release(release); err != nil {
			return &SettingError{Setting: "release", Err: err}
		}
	}
	return checkOverlay(path, rel)
}

// checkOverlayShape reads the overlay (a regular file of at most
// MaxOverlaySize bytes) and checks what it says without rendering it.
func checkOverlayShape(path string) error {
	data, err := catalog.ReadLimited(path, MaxOverlaySize)
	if err != nil {
		return fmt.Errorf("istio overlay: %w", err)
	}
	if n, err := countDocuments(data); err != nil {
		return fmt.Errorf("istio overlay %s: %w", path, err)
	} else if n > 1 {
		return fmt.Errorf("istio overlay %s: %d YAML documents: an overlay is one IstioOperator", path, n)
	}
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(data, &head); err != nil {
		return fmt.Errorf("istio overlay %s: %w", path, err)
	}
	if head.Kind != "IstioOperator" || !strings.HasPrefix(head.APIVersion, "install.istio.io/") {
		return fmt.Errorf("istio overlay %s: want an IstioOperator (install.istio.io/v1alpha1), got %s %s", path, catalog.QuoteShort(head.APIVersion), catalog.QuoteShort(head.Kind))
	}
	var iop struct {
		APIVersion string         `json:"apiVersion"`
		Kind       string         `json:"kind"`
		Metadata   map[string]any `json:"metadata"`
		Spec       map[string]any `json:"spec"`
	}
	if err := yaml.UnmarshalStrict(data, &iop); err != nil {
		return fmt.Errorf("istio overlay %s: %w", path, err)
	}
	for _, k := range []string{"meshConfig", "values", "components", "unvalidatedValues"} {
		if v, ok := iop.Spec[k]; ok && v != nil {
			if _, isMap := v.(map[string]any); !isMap {
				return fmt.Errorf("istio overlay %s: spec.%s: want a mapping, got %s", path, k, catalog.QuoteShort(fmt.Sprint(v)))
			}
		}
	}
	if ns, ok := iop.Spec["namespace"]; ok && ns != istioNamespace {
		return fmt.Errorf("istio overlay %s: spec.namespace %s: tmbox installs Istio in %s and does not move it; remove spec.namespace", path, catalog.QuoteShort(fmt.Sprint(ns)), istioNamespace)
	}
	if field := imageField("spec", iop.Spec); field != "" {
		return fmt.Errorf("istio overlay %s: %s chooses an image; the images are the release's pins (use --registry to serve them from a private registry)", path, field)
	}
	return nil
}

// imageField returns the path of the first field under v that chooses an
// image, in a stable order: a key in imageKeys, or a k8s overlay patch
// whose path ends in an image field. "" when there is none.
func imageField(at string, v any) string {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if slices.Contains(imageKeys, k) {
				return at + "." + k
			}
			if p, ok := v[k].(string); ok && k == "path" && isImagePath(p) {
				return at + ".path " + catalog.QuoteShort(p)
			}
			if f := imageField(at+"."+k, v[k]); f != "" {
				return f
			}
		}
	case []any:
		for i, e := range v {
			if f := imageField(fmt.Sprintf("%s[%d]", at, i), e); f != "" {
				return f
			}
		}
	}
	return ""
}

// isImagePath reports whether a k8s overlay patch path (for example
// spec.template.spec.containers.[name:istio-proxy].image) sets an image; a
// patch that replaces a whole container names its image in its value.
func isImagePath(p string) bool {
	return p[strings.LastIndex(p, ".")+1:] == "image"
}

// checkPinnedImages refuses rendered objects whose pod templates run an
// image comp does not pin: the last guard that an overlay, whatever field
// it used, cannot change what runs.
func checkPinnedImages(comp *catalog.Component, objs []*unstructured.Unstructured) error {
	for _, u := range objs {
		for _, img := range podTemplateImages(u) {
			if !slices.Contains(comp.Images, img) {
				return fmt.Errorf("%s runs %s, which Istio %s does not pin", apply.KeyOf(u), catalog.QuoteShort(img), comp.Version)
			}
		}
	}
	return nil
}

// countDocuments counts the non-empty YAML documents of data.
func countDocuments(data []byte) (int, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	n := 0
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if len(bytes.TrimSpace(doc)) > 0 && strings.TrimSpace(string(doc)) != "---" {
			n++
		}
	}
}
