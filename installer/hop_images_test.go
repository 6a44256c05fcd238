package installer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/tmbox/tmbox/bundle"
	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/internal/testcluster"
	"github.com/tmbox/tmbox/internal/testimage"
)

// syntheticReleases is a catalog of test releases (Knative minors named
// as cmd/tmbox's air-gap fixture names them, so consecutive ones are hops
// the planner allows) whose components are a ConfigMap and a Deployment
// running one small image each, served by an in-process "upstream"
// registry. TriggerMesh's components and the kind node image are the
// same in every release.
type syntheticReleases struct {
	catalog, mirror string
	// images maps each release to its images (kind node image aside).
	images map[string][]string
	// nodeImage is every release's kind node image.
	nodeImage string
}

func newSyntheticReleases(t *testing.T, upstream string, releases ...string) *syntheticReleases {
	t.Helper()
	s := &syntheticReleases{mirror: t.TempDir(), images: map[string][]string{}}
	push := func(repo string) string {
		ref := upstream + "/" + repo
		return ref + "@" + testimage.Push(t, ref, 4<<10, nil).String()
	}
	s.nodeImage = push("kindest/node:v1.34.0")
	var cat strings.Builder
	cat.WriteString("apiVersion: tmbox.dev/v1alpha1\nkind: Catalog\nreleases:\n")
	for _, rel := range releases {
		fmt.Fprintf(&cat, "- name: %q\n  kindNodeImage: %s\n  host: {cpus: 1, memory: 1Gi, disk: 1Gi}\n  components:\n", rel, s.nodeImage)
		for _, c := range catalog.ComponentNames() {
			fmt.Fprintf(&cat, "  - name: %s\n    version: %q\n", c, testimage.Versions(t, rel)[c])
		}
	}
	cat.WriteString("components:\n")
	byKey := map[string]string{}
	for _, rel := range releases {
		for _, c := range catalog.ComponentNames() {
			v := testimage.Versions(t, rel)[c]
			key := c + "@" + v
			if ref, ok := byKey[key]; ok {
				s.images[rel] = append(s.images[rel], ref)
				continue
			}
			ref := push(c + "/controller:" + v)
			byKey[key] = ref
			s.images[rel] = append(s.images[rel], ref)
			manifest := fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata: {name: %[1]s-version, namespace: tm-%[1]s}
data: {version: %[2]q}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s-controller, namespace: tm-%[1]s}
spec:
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      containers:
      - name: controller
        image: %[3]s
`, c, v, ref)
			path := fmt.Sprintf("%s/%s/%s.yaml", c, v, c)
			full := filepath.Join(s.mirror, path)
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(full, []byte(manifest), 0o644); err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256([]byte(manifest))
			fmt.Fprintf(&cat, "- name: %s\n  version: %q\n  kubernetes: \">= 1.30\"\n  assets:\n  - name: %s.yaml\n    path: %s\n    url: https://example.invalid/%s\n    size: %d\n    sha256: %s\n  images:\n  - %q\n",
				c, v, c, path, path, len(manifest), hex.EncodeToString(sum[:]), ref)
		}
	}
	s.catalog = filepath.Join(t.TempDir(), "catalog.yaml")
	if err := os.WriteFile(s.catalog, []byte(cat.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// bundle writes a bundle of the releases named and returns its path.
func (s *syntheticReleases) bundle(t *testing.T, releases ...string) string {
	t.Helper()
	cat, err := catalog.Load(s.catalog)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), strings.Join(releases, "-")+".bundle")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := bundle.Create(context.Background(), f, bundle.CreateOptions{Catalog: cat, Releases: releases, Source: catalog.Mirror{Dir: s.mirror}}); err != nil {
		t.Fatal(err)
	}
	return file
}

// orderedLog is what the private registry was asked and what the upgrade
// reported, in the order it happened.
type orderedLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *orderedLog) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, s)
}

func (l *orderedLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}

// Report logs the phase events ("start images", "done verify") and the
// info messages.
func (l *orderedLog) Report(e Event) {
	switch e.Type {
	case EventPhaseStart:
		l.add("start " + e.Phase)
	case EventPhaseDone:
		l.add("done " + e.Phase + ": " + e.Message)
	case EventInfo:
		l.add("info " + e.Message)
	}
}

// TestIntegrationHopImages: an upgrade from a bundle pushes each hop's
// release images just before that hop applies, and only those the
// registry lacks: with 1.30 installed into a private registry, a two-hop
// upgrade to 1.32 pushes 1.31's new images in hop 1's images phase and
// 1.32's in hop 2's (none of 1.32's before hop 1 is verified), and never
// pushes again an image the install pushed (TriggerMesh's, the same in
// every release).
func TestIntegrationHopImages(t *testing.T) {
	shared := suite.Cluster(t)
	c := testcluster.StartT(t, testcluster.Options{BinDir: shared.BinDir, SharedWebhookStandIn: shared.WebhookStandIn})
	upstream := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer upstream.Close()
	rels := newSyntheticReleases(t, strings.TrimPrefix(upstream.URL, "http://"), "1.30", "1.31", "1.32")
	first, walk := rels.bundle(t, "1.30"), rels.bundle(t, "1.30", "1.31", "1.32")
	upstream.Close() // air-gapped from here on

	var events orderedLog
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	private := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") {
			events.add("PUT " + r.URL.Path)
		}
		reg.ServeHTTP(w, r)
	}))
	defer private.Close()
	registryFlag := strings.TrimPrefix(private.URL, "http://") + "/mirror"
	state := t.TempDir()
	var out bytes.Buffer
	in := &Install{Options: Options{Release: "1.30", Bundle: first, Registry: registryFlag, StateDir: state, PhaseTimeout: 2 * time.Minute, Reporter: &PlainReporter{W: &out}}, Config: c.Config}
	if _, err := in.Run(context.Background()); err != nil {
		t.Fatalf("install 1.30 from its bundle: %v\n%s", err, out.String())
	}
	installed := len(events.snapshot())

	u := &Upgrade{Options: Options{Release: "1.32", Bundle: walk, StateDir: state, PhaseTimeout: 2 * time.Minute, Reporter: &events}, Config: c.Config}
	start := time.Now()
	if err := u.Run(context.Background()); err != nil {
		t.Fatalf("upgrade to 1.32: %v\n%s", err, strings.Join(events.snapshot(), "\n"))
	}
	log := events.snapshot()[installed:]
	t.Logf("upgrade 1.30 → 1.32 from the bundle: %s\n%s", time.Since(start).Round(time.Millisecond), strings.Join(log, "\n"))

	// manifestPaths are the paths an image's manifest is PUT at: by
	// digest, and by tag.
	manifestPaths := func(ref string) []string {
		t.Helper()
		to, err := bundle.RegistryRef(registryFlag, ref, "")
		if err != nil {
			t.Fatal(err)
		}
		r, err := name.NewDigest(to)
		if err != nil {
			t.Fatal(err)
		}
		base := "PUT /v2/" + r.Context().RepositoryStr() + "/manifests/"
		tag := to[strings.LastIndex(to[:strings.Index(to, "@")], ":")+1 : strings.Index(to, "@")]
		return []string{base + r.DigestStr(), base + tag}
	}
	// Where each hop's phases are in the log.
	indexes := func(line string) []int {
		var out []int
		for i, l := range log {
			if l == line || strings.HasPrefix(l, line+": ") {
				out = append(out, i)
			}
		}
		return out
	}
	imagesStart, istioStart, verifyDone := indexes("start "+PhaseImages), indexes("start "+PhaseIstio), indexes("done "+PhaseVerify)
	if len(imagesStart) != 2 || len(istioStart) != 2 || len(verifyDone) != 2 {
		t.Fatalf("want two hops, each with an images phase before istio and a verify: images %v, istio %v, verify %v", imagesStart, istioStart, verifyDone)
	}
	hop := []struct{ from, to int }{{imagesStart[0], istioStart[0]}, {imagesStart[1], istioStart[1]}}
	if verifyDone[0] > hop[1].from {
		t.Fatalf("hop 2's images phase (line %d) before hop 1 was verified (line %d)", hop[1].from, verifyDone[0])
	}
	puts := func(ref string) []int {
		var out []int
		paths := manifestPaths(ref)
		for i, l := range log {
			if slices.Contains(paths, l) {
				out = append(out, i)
			}
		}
		return out
	}
	for i, rel := range []string{"1.31", "1.32"} {
		prev := map[string]bool{}
		for _, ref := range rels.images[[]string{"1.30", "1.31"}[i]] {
			prev[ref] = true
		}
		pushed := 0
		for _, ref := range rels.images[rel] {
			at := puts(ref)
			if prev[ref] {
				if len(at) > 0 {
					t.Errorf("release %s: %s, which the registry held already, pushed again at lines %v", rel, ref, at)
				}
				continue
			}
			if len(at) == 0 {
				t.Errorf("release %s: %s never pushed", rel, ref)
			}
			for _, l := range at {
				if l < hop[i].from || l > hop[i].to {
					t.Errorf("release %s: %s pushed at line %d, outside hop %d's images phase (lines %d–%d)", rel, ref, l, i+1, hop[i].from, hop[i].to)
				}
			}
			pushed++
		}
		done := indexes("done " + PhaseImages)
		if want := fmt.Sprintf("release %s: pushed %d of its %d images", rel, pushed, len(rels.images[rel])); len(done) != 2 || !strings.Contains(log[done[i]], want) {
			t.Errorf("hop %d's images phase reports %q, want %q", i+1, log[done[i]], want)
		}
	}
	if at := puts(rels.nodeImage); len(at) > 0 {
		t.Errorf("the kind node image was pushed during the upgrade (lines %v): no pod runs it", at)
	}
}

// TestWriteOCIArchiveSubset: an archive of some of a layout's images holds
// their index entries and the blobs they reach, nothing of the others.
func TestWriteOCIArchiveSubset(t *testing.T) {
	dir := t.TempDir()
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	var imgs []bundle.Image
	blobsOf := map[string][]string{}
	for i := range 3 {
		img, err := random.Image(512, 2)
		if err != nil {
			t.Fatal(err)
		}
		ref := fmt.Sprintf("example.com/img%d:v1", i)
		if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref})); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		cfg, _ := img.ConfigName()
		blobs := []string{blobPath(d), blobPath(cfg)}
		layers, _ := img.Layers()
		for _, l := range layers {
			ld, _ := l.Digest()
			blobs = append(blobs, blobPath(ld))
		}
		blobsOf[ref] = blobs
		imgs = append(imgs, bundle.Image{Ref: ref, Digest: d.String()})
	}
	for _, tc := range []struct {
		name string
		only []bundle.Image
		want []string // refs
	}{
		{"all", nil, []string{imgs[0].Ref, imgs[1].Ref, imgs[2].Ref}},
		{"one", imgs[1:2], []string{imgs[1].Ref}},
		{"two", []bundle.Image{imgs[2], imgs[0]}, []string{imgs[0].Ref, imgs[2].Ref}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := writeOCIArchive(&buf, dir, tc.only); err != nil {
				t.Fatal(err)
			}
			entries, index := readOCIArchive(t, &buf)
			if !entries["oci-layout"] {
				t.Error("no oci-layout")
			}
			for _, img := range imgs {
				want := slices.Contains(tc.want, img.Ref)
				if got := strings.Contains(index, `"io.containerd.image.name":"`+containerdName(img.Ref)+`"`); got != want {
					t.Errorf("index names %s: %v, want %v:\n%s", img.Ref, got, want, index)
				}
				for _, b := range blobsOf[img.Ref] {
					if entries[b] != want {
						t.Errorf("blob %s of %s in the archive: %v, want %v", b, img.Ref, entries[b], want)
					}
				}
			}
		})
	}
	if err := writeOCIArchive(io.Discard, dir, []bundle.Image{{Ref: "example.com/missing:v1", Digest: imgs[0].Digest}}); err == nil {
		t.Error("an image the layout does not hold: no error")
	}
}

func blobPath(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }
