package installer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tmbox/tmbox/bundles"
)

// TestRegistryRewriteOfRealReleases rewrites every image of each real
// release onto a private registry and checks that no object still names an
// original reference — containers, init containers, env values and
// ConfigMap values (Knative's queue-proxy, TriggerMesh's adapters) alike —
// and that every rewritten reference keeps a digest.
func TestRegistryRewriteOfRealReleases(t *testing.T) {
	dir := filepath.Join("..", "..", "shared", "upstream")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("the upstream manifests are not at %s: %v", dir, err)
	}
	cat, err := bundles.Load("")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range cat.ReleaseNames() {
		rel, _ := cat.Release(name)
		t.Run(name, func(t *testing.T) {
			m := &bundles.BundleManifest{}
			for i, img := range rel.Images() {
				m.Images = append(m.Images, bundles.BundleImage{Ref: img, Digest: fmt.Sprintf("sha256:%064x", i+1)})
			}
			mapping, err := registryMapping(m, "registry.corp.example:5000/tmbox")
			if err != nil {
				t.Fatal(err)
			}
			opts := &Options{Mirror: dir, imageMap: mapping}
			if err := opts.Validate(); err != nil {
				t.Fatal(err)
			}
			d, err := objectsFor(context.Background(), bundles.Mirror{Dir: dir}, rel, opts.Components, opts)
			if err != nil {
				t.Fatal(err)
			}
			var all bytes.Buffer
			for _, u := range d.unstructured() {
				raw, err := json.Marshal(u.Object)
				if err != nil {
					t.Fatal(err)
				}
				all.Write(raw)
				all.WriteByte('\n')
			}
			text := all.Bytes()
			for orig, to := range mapping {
				if !bytes.Equal(rewriteImages(text, map[string]string{orig: "\x00gone"}), text) {
					t.Errorf("%s still appears as a whole reference", orig)
				}
				if strings.Contains(orig, ":") && !strings.Contains(to, "@sha256:") {
					t.Errorf("%s → %s lost its digest", orig, to)
				}
			}
			found := 0
			for _, to := range mapping {
				if bytes.Contains(text, []byte(to)) {
					found++
				}
			}
			t.Logf("%d images mapped, %d rewritten references found in the objects", len(mapping), found)
			if found == 0 {
				t.Error("no rewritten reference in the objects")
			}
		})
	}
}
