package installer

import (
	"archive/tar"
	"bytes"
	"io"
	"os/exec"

	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/tmbox/tmbox/bundle"
	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer/apply"
	"github.com/tmbox/tmbox/installer/provider"
)

// TestRegistryRewriteOfRealReleases rewrites every image of each real
// release onto a private registry and checks that no object still names an
// original reference — containers, init containers, env values and
// ConfigMap values (Knative's queue-proxy, TriggerMesh's adapters) alike —
// and that every rewritten reference keeps a digest.
func TestRegistryRewriteOfRealReleases(t *testing.T) {
	forEachRelease(t, func(t *testing.T, dir string, rel *catalog.Release) {
		m := &bundle.Manifest{}
		for i, img := range rel.Images() {
			m.Images = append(m.Images, bundle.Image{Ref: img, Digest: fmt.Sprintf("sha256:%064x", i+1)})
		}
		mapping, err := registryMapping(m, "registry.corp.example:5000/tmbox")
		if err != nil {
			t.Fatal(err)
		}
		d, err := objectsFor(context.Background(), catalog.Mirror{Dir: dir}, rel, catalog.ComponentNames(), renderInputs{imageMap: mapping})
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
			if !bytes.Equal(apply.RewriteImages(text, map[string]string{orig: "\x00gone"}), text) {
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

// layoutBundle is an extracted bundle holding one random image as the kind
// node image.
func layoutBundle(t *testing.T) (*bundle.Extracted, v1.Image) {
	t.Helper()
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	ref := "kindest/node:v1.34.0@sha256:" + strings.Repeat("4", 64)
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref})); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	m := &bundle.Manifest{KindNodeImage: ref, Images: []bundle.Image{{Ref: ref, Digest: d.String()}}}
	return &bundle.Extracted{Manifest: m, LayoutDir: dir}, img
}

// TestNodeImageLoader feeds the node image to a stand-in `docker load` and
// checks the archive holds the image under the release's tag.
func TestNodeImageLoader(t *testing.T) {
	b, img := layoutBundle(t)
	bin := t.TempDir()
	got := filepath.Join(t.TempDir(), "loaded.tar")
	script := "#!/bin/sh\n[ \"$1\" = load ] || exit 3\n" + catPath(t) + " > " + got + "\n"
	if err := os.WriteFile(filepath.Join(bin, "docker"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)
	t.Setenv("KIND_EXPERIMENTAL_PROVIDER", "")
	tag, err := (&provider.Kind{}).LoadNodeImageFrom(context.Background(), b.LayoutDir, b.Manifest.KindNodeImage, storedDigest(b.Manifest, b.Manifest.KindNodeImage))
	if err != nil {
		t.Fatal(err)
	}
	if tag != "index.docker.io/kindest/node:v1.34.0" && tag != "kindest/node:v1.34.0" {
		t.Errorf("tag %q", tag)
	}
	nt, _ := name.NewTag("kindest/node:v1.34.0")
	loaded, err := tarball.ImageFromPath(got, &nt)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.ConfigName()
	if have, _ := loaded.ConfigName(); have != want {
		t.Errorf("loaded config %s, want %s", have, want)
	}
}

// TestWriteOCIArchive checks the archive names each image for containerd.
// TestContainerdName: images are named as containerd's CRI looks them up
// (a tag and a digest: the digest alone; Docker Hub spelled docker.io).
func TestContainerdName(t *testing.T) {
	const d = "sha256:0000000000000000000000000000000000000000000000000000000000000001"
	tests := []struct{ ref, want string }{
		{"registry.local:5000/istio/pilot:1.28.6@" + d, "registry.local:5000/istio/pilot@" + d},
		{"busybox:1.28", "docker.io/library/busybox:1.28"},
		{"docker.io/istio/proxyv2:1.28.6", "docker.io/istio/proxyv2:1.28.6"},
		{"gcr.io/knative-releases/x@" + d, "gcr.io/knative-releases/x@" + d},
	}
	for _, tt := range tests {
		if got := containerdName(tt.ref); got != tt.want {
			t.Errorf("containerdName(%q) = %q, want %q", tt.ref, got, tt.want)
		}
	}
}

func TestWriteOCIArchive(t *testing.T) {
	b, _ := layoutBundle(t)
	var buf bytes.Buffer
	if err := writeOCIArchive(&buf, b.LayoutDir, nil); err != nil {
		t.Fatal(err)
	}
	names, index := readOCIArchive(t, &buf)
	if !strings.Contains(index, `"io.containerd.image.name":"`+containerdName(b.Manifest.KindNodeImage)+`"`) {
		t.Errorf("index.json lacks the containerd name: %s", index)
	}
	if !names["index.json"] || !names["oci-layout"] || len(names) < 4 {
		t.Errorf("entries %v", names)
	}
}

// readOCIArchive returns the names of an archive's entries and its
// index.json.
func readOCIArchive(t *testing.T, r io.Reader) (names map[string]bool, index string) {
	t.Helper()
	names = map[string]bool{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names, index
		} else if err != nil {
			t.Fatal(err)
		}
		names[h.Name] = true
		if h.Name == "index.json" {
			raw, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			index = string(raw)
		}
	}
}

func catPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("cat")
	if err != nil {
		t.Skip("no cat to stand in for docker load")
	}
	return p
}
