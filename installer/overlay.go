package installer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
func checkOverlay(ov *istioOverlay, rel *catalog.Release) error {
	if ov == nil {
		return nil
	}
	if err := overlayApplies(rel); err != nil {
		return err
	}
	if err := checkOverlayShape(ov.name(), ov.data); err != nil {
		return &SettingError{Setting: "istio-overlay", Err: err}
	}
	return nil
}

// overlayApplies refuses an overlay for a release whose Istio is not the
// compiled-in one.
func overlayApplies(rel *catalog.Release) error {
	if istio, _ := rel.Component(catalog.Istio); istio.Source != catalog.SourceCompiledIn {
		return &SettingError{Setting: "istio-overlay", Err: fmt.Errorf("--istio-overlay applies to the compiled-in Istio; release %s installs Istio %s from its pinned manifests", rel.Name, istio.Version)}
	}
	return nil
}

// istioOverlay is an Istio overlay, read once per run: the file the user
// gave, or the copy an earlier run kept in the cluster.
type istioOverlay struct {
	// file is the path the user gave (the state records it).
	file string
	// kept says the data was read back from the cluster, not from file.
	kept bool
	data []byte
}

// readOverlay reads the overlay file the user gave (nil for "").
func readOverlay(path string) (*istioOverlay, error) {
	if path == "" {
		return nil, nil
	}
	data, err := catalog.ReadLimited(path, MaxOverlaySize)
	if err != nil {
		return nil, &SettingError{Setting: "istio-overlay", Err: fmt.Errorf("istio overlay: %w", err)}
	}
	return &istioOverlay{file: path, data: data}, nil
}

// name is how messages name the overlay.
func (o *istioOverlay) name() string {
	if o.kept {
		return o.file + " (kept in the cluster)"
	}
	return o.file
}

// digest is the sha256 of the overlay's bytes, hex.
func (o *istioOverlay) digest() string {
	sum := sha256.Sum256(o.data)
	return hex.EncodeToString(sum[:])
}

// CheckOverlay checks an Istio overlay against a release of a catalog
// ("" catalogFile: the embedded one; "" release: the latest) as Install
// does before rendering: the release's Istio must be the compiled-in one,
// and the overlay a single IstioOperator that chooses no image and keeps
// Istio's namespace. It reads the overlay file only; nothing renders, no
// cluster is contacted. Errors are *SettingError of "istio-overlay".
func CheckOverlay(path, release, catalogFile string) error {
	if path == "" {
		return nil
	}
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
	if err := overlayApplies(rel); err != nil {
		return err
	}
	ov, err := readOverlay(path)
	if err != nil {
		return err
	}
	return checkOverlay(ov, rel)
}

// checkOverlayShape checks what an overlay's data says without rendering
// it; path names it in errors.
func checkOverlayShape(path string, data []byte) error {
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

const (
	// OverlayConfigMap is the ConfigMap in istio-system that keeps the
	// Istio overlay a run rendered Istio with, so later runs (upgrades
	// from another machine among them) render it again without the file.
	OverlayConfigMap = "tmbox-istio-overlay"
	// OverlayKey is OverlayConfigMap's key holding the overlay's bytes.
	OverlayKey = "overlay.yaml"
)

// KeptOverlay is what the state records of the Istio overlay the release
// runs with; its bytes live in OverlayConfigMap.
type KeptOverlay struct {
	// File is the path the overlay was given as (for messages).
	File string `json:"file"`
	// SHA256 is the digest of its bytes, hex.
	SHA256 string `json:"sha256"`
}

// overlayConfigMap is the object keeping an overlay in the cluster. It is
// one of Istio's objects: applied, pruned and uninstalled with it.
func overlayConfigMap(ov *istioOverlay) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1",
		"kind":       "ConfigMap",
		"metadata": map[string]any{
			"name": OverlayConfigMap, "namespace": istioNamespace,
			"annotations": map[string]any{"tmbox.dev/istio-overlay-file": ov.file},
		},
		"data": map[string]any{OverlayKey: string(ov.data)},
	}}
}

// overlayFromState renders with the overlay the installed release kept
// when the user gives none (and does not reset the settings): its bytes
// are read back from OverlayConfigMap and must match the digest the state
// recorded. Without a connection there is nothing to read.
func (e *env) overlayFromState(ctx context.Context) error {
	if e.render.istioOverlay != nil || e.opts.ResetPlatform || e.state == nil || e.state.IstioOverlay == nil || !e.connected() {
		return nil
	}
	kept := e.state.IstioOverlay
	again := fmt.Sprintf("give --istio-overlay %s again, or --reset-settings to drop it", kept.File)
	cm, err := e.client.CoreV1().ConfigMaps(istioNamespace).Get(ctx, OverlayConfigMap, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return &SettingError{Setting: "istio-overlay", Err: fmt.Errorf("release %s runs with the Istio overlay %s, but its ConfigMap %s/%s is gone: %s", e.state.Release, kept.File, istioNamespace, OverlayConfigMap, again)}
	}
	if err != nil {
		return fmt.Errorf("read the kept Istio overlay, ConfigMap %s/%s: %w", istioNamespace, OverlayConfigMap, err)
	}
	ov := &istioOverlay{file: kept.File, kept: true, data: []byte(cm.Data[OverlayKey])}
	if ov.digest() != kept.SHA256 {
		return &SettingError{Setting: "istio-overlay", Err: fmt.Errorf("the Istio overlay %s kept in ConfigMap %s/%s was changed since tmbox wrote it (sha256 %s, recorded %s): %s", kept.File, istioNamespace, OverlayConfigMap, shortDigest(ov.digest()), shortDigest(kept.SHA256), again)}
	}
	if err := checkOverlayShape(ov.name(), ov.data); err != nil {
		return &SettingError{Setting: "istio-overlay", Err: fmt.Errorf("%w: %s", err, again)}
	}
	e.render.istioOverlay = ov
	e.report(Event{Type: EventInfo, Message: fmt.Sprintf("Istio overlay %s kept from the installed release %s (--istio-overlay FILE replaces it, --reset-settings drops it)", kept.File, e.state.Release)})
	return nil
}

// overlayState is what the state records of this run's overlay: nil
// without one, or when the release's Istio is not the compiled-in one
// (the overlay did not apply and is not kept).
func (e *env) overlayState() *KeptOverlay {
	ov := e.render.istioOverlay
	if ov == nil || overlayApplies(e.release) != nil {
		return nil
	}
	return &KeptOverlay{File: ov.file, SHA256: ov.digest()}
}

// overlayDigest is the digest of the overlay this run renders the
// release with ("" for none).
func (e *env) overlayDigest() string {
	if k := e.overlayState(); k != nil {
		return k.SHA256
	}
	return ""
}

// shortDigest is a digest's first 12 hex digits, for messages.
func shortDigest(d string) string {
	if len(d) > 12 {
		return d[:12]
	}
	return d
}
