package catalog

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/go-version"
)

// upstreamDir is ../shared/upstream beside the repository; tests that need
// it report (not fail) when it is absent.
func upstreamDir(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "shared", "upstream"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("SKIPPED, not verified: %s is absent, so the pinned digests were not checked against the upstream files", dir)
	}
	return dir
}

func TestEmbeddedCatalog(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		release                                 string
		serving, eventing, netIstio, istio      string
		kubernetes                              string
		triggermesh, triggermeshCore, istioFrom string
	}{
		{"1.21", "1.21.3", "1.21.4", "1.21.4", "1.28.6", ">=1.33, <=1.34", "1.27.0", "1.5.3", SourceManifests},
		{"1.22", "1.22.1", "1.22.2", "1.22.1", "1.29.2", ">=1.34, <=1.35", "1.27.0", "1.5.3", SourceManifests},
		{"1.23", "1.23.0", "1.23.0", "1.23.0", "1.30.3", ">=1.34, <=1.36", "1.27.0", "1.5.3", SourceCompiledIn},
	}
	if got := c.ReleaseNames(); !slices.Equal(got, []string{"1.21", "1.22", "1.23"}) {
		t.Fatalf("releases %v", got)
	}
	for _, w := range want {
		t.Run(w.release, func(t *testing.T) {
			r, err := c.Release(w.release)
			if err != nil {
				t.Fatal(err)
			}
			for name, v := range map[string]string{
				KnativeServing: w.serving, KnativeEventing: w.eventing, NetIstio: w.netIstio, Istio: w.istio,
				TriggerMesh: w.triggermesh, TriggerMeshCore: w.triggermeshCore,
			} {
				comp, ok := r.Component(name)
				if !ok || comp.Version != v {
					t.Errorf("%s: got %+v, want version %s", name, comp, v)
				}
			}
			if got := r.KubernetesRange(); got != w.kubernetes {
				t.Errorf("Kubernetes range %q, want %q", got, w.kubernetes)
			}
			istio, _ := r.Component(Istio)
			if src := istio.Source; src != w.istioFrom && !(src == "" && w.istioFrom == SourceManifests) {
				t.Errorf("istio source %q, want %q", src, w.istioFrom)
			}
			if !strings.Contains(r.KindNodeImage, "kindest/node:v1.34.") || !digestPinned.MatchString(r.KindNodeImage) {
				t.Errorf("kind node image %q: want Kubernetes 1.34 by digest", r.KindNodeImage)
			}
			for _, img := range r.Images() {
				if strings.HasPrefix(img, "ko://") {
					t.Errorf("unresolved image %s", img)
				}
			}
		})
	}
}

// TestCatalogMatchesUpstream checks every pinned size and sha256 against the
// upstream files, and every component's image list against the images found
// in its files, with VerifyMirror (what tmbox catalog verify runs).
func TestCatalogMatchesUpstream(t *testing.T) {
	dir := upstreamDir(t)
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyMirror(context.Background(), c, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range rep.Mismatches {
		t.Errorf("%s", m)
	}
	t.Logf("verified %d pinned assets of %d components against %s", rep.Assets, rep.Components, dir)
	if rep.Assets < 100 || rep.Components != len(c.Components) {
		t.Errorf("only %d assets of %d components checked", rep.Assets, rep.Components)
	}
}

func TestResolveImage(t *testing.T) {
	comp := &Component{
		Ko:            &KoResolution{Prefix: "ko://github.com/triggermesh/triggermesh/cmd/", Registry: "gcr.io/triggermesh", Tag: "v1.27.0"},
		ImageRewrites: map[string]string{"gcr.io/triggermesh/xslt-adapter:latest": "gcr.io/triggermesh/xslt-adapter:v1.27.0"},
	}
	tests := []struct{ ref, registry, want string }{
		{"ko://github.com/triggermesh/triggermesh/cmd/triggermesh-controller", "", "gcr.io/triggermesh/triggermesh-controller:v1.27.0"},
		{"ko://github.com/triggermesh/triggermesh/cmd/triggermesh-controller", "registry.corp:5000/tm/", "registry.corp:5000/tm/triggermesh-controller:v1.27.0"},
		{"gcr.io/triggermesh/xslt-adapter:latest", "", "gcr.io/triggermesh/xslt-adapter:v1.27.0"},
		{"gcr.io/triggermesh/xslt-adapter:latest", "registry.corp/tm", "registry.corp/tm/xslt-adapter:v1.27.0"},
		{"gcr.io/knative-releases/x@sha256:abc", "registry.corp/tm", "gcr.io/knative-releases/x@sha256:abc"},
	}
	for _, tt := range tests {
		if got := comp.ResolveImage(tt.ref, tt.registry); got != tt.want {
			t.Errorf("ResolveImage(%q, %q) = %q, want %q", tt.ref, tt.registry, got, tt.want)
		}
	}
}

func TestImagesIn(t *testing.T) {
	manifest := `
apiVersion: apps/v1
kind: Deployment
spec:
  template:
    spec:
      initContainers:
      - name: init
        image: busybox:1.36
      containers:
      - name: c
        image: ko://example.com/cmd/controller
        env:
        - name: ADAPTER_IMAGE
          value: redis/redis-stack-server:latest
        - name: OTHER
          value: not-an-image
---
apiVersion: v1
kind: ConfigMap
data:
  queue-sidecar-image: gcr.io/knative-releases/queue@sha256:` + strings.Repeat("a", 64) + `
  template: |
    spec:
      containers:
      - image: "docker.io/library/nginx:1.27"
      - image: "{{ .ProxyImage }}"
      - image: auto
  url: https://example.com/not/an/image
`
	got, err := ImagesIn([]byte(manifest))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"busybox:1.36",
		"docker.io/library/nginx:1.27",
		"gcr.io/knative-releases/queue@sha256:" + strings.Repeat("a", 64),
		"ko://example.com/cmd/controller",
		"redis/redis-stack-server:latest",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
	if _, err := ImagesIn([]byte("a: [")); err == nil {
		t.Error("want an error for broken YAML")
	}
}

// validCatalog is a small catalog that passes validation; tests break it.
func validCatalog(releases ...string) string {
	var b strings.Builder
	b.WriteString("apiVersion: tmbox.dev/v1alpha1\nkind: Catalog\nreleases:\n")
	for _, r := range releases {
		fmt.Fprintf(&b, "- name: %q\n  kindNodeImage: kindest/node:v1.34.11@sha256:%s\n  host: {cpus: 4, memory: 8Gi, disk: 40Gi}\n  components:\n", r, strings.Repeat("4", 64))
		for _, n := range ComponentNames() {
			fmt.Fprintf(&b, "  - name: %s\n    version: %q\n", n, componentVersion(n, r))
		}
	}
	b.WriteString("components:\n")
	done := map[string]bool{}
	for _, r := range releases {
		for _, n := range ComponentNames() {
			v := componentVersion(n, r)
			if done[n+v] {
				continue
			}
			done[n+v] = true
			fmt.Fprintf(&b, "- name: %s\n  version: %q\n  kubernetes: \">= 1.30\"\n  assets:\n  - name: f.yaml\n    path: %s/%s/f.yaml\n    url: https://example.com/%s/%s/f.yaml\n    size: 10\n    sha256: %s\n  images:\n  - example.com/%s:%s\n",
				n, v, n, v, n, v, strings.Repeat("a", 64), n, v)
		}
	}
	return b.String()
}

func componentVersion(name, release string) string {
	switch name {
	case Istio:
		_, m, _ := strings.Cut(release, ".")
		var minor int
		fmt.Sscan(m, &minor)
		return fmt.Sprintf("1.%d.0", minor+7)
	case TriggerMesh:
		return "1.27.0"
	case TriggerMeshCore:
		return "1.5.3"
	}
	return release + ".0"
}

func TestParseValid(t *testing.T) {
	c, err := Parse([]byte(validCatalog("1.21", "1.22", "1.23")), "test")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Releases) != 3 || len(c.Latest().ComponentList()) != 6 {
		t.Errorf("parsed %+v", c)
	}
}

func TestParseRefuses(t *testing.T) {
	base := validCatalog("1.21", "1.22")
	lineOfText := func(s, needle string, nth int) int {
		for i, l := range strings.Split(s, "\n") {
			if strings.Contains(l, needle) {
				if nth == 0 {
					return i + 1
				}
				nth--
			}
		}
		return -1
	}
	tests := []struct {
		name     string
		catalog  string
		reason   string
		wantLine int
	}{
		{"unknown key", strings.Replace(base, "  kindNodeImage:", "  colour: blue\n  kindNodeImage:", 1), "field colour not found", 5},
		{"missing digest", strings.Replace(base, "    sha256: "+strings.Repeat("a", 64)+"\n", "", 1), "missing sha256 digest", lineOfText(base, "  - name: f.yaml", 0)},
		{"bad digest", strings.Replace(base, "sha256: "+strings.Repeat("a", 64), "sha256: abc", 1), "is not 64 lowercase hex", lineOfText(base, "sha256: aaaa", 0)},
		{"bad constraint", strings.Replace(base, `kubernetes: ">= 1.30"`, `kubernetes: "at least 1.30"`, 1), "bad Kubernetes constraint", lineOfText(base, "kubernetes:", 0)},
		{"duplicate release", validCatalog("1.21", "1.21"), "duplicate release 1.21", lineOfText(validCatalog("1.21", "1.21"), `- name: "1.21"`, 1)},
		{"out of order", validCatalog("1.22", "1.21"), "out of order", lineOfText(validCatalog("1.22", "1.21"), `- name: "1.21"`, 0)},
		{"release name", strings.Replace(base, `- name: "1.21"`, `- name: "latest"`, 1), "not a Knative minor", 4},
		{"unpinned kind image", strings.Replace(base, "kindNodeImage: kindest/node:v1.34.11@sha256:"+strings.Repeat("4", 64), "kindNodeImage: kindest/node:v1.34.11", 1), "not pinned by digest", 5},
		{"unknown component ref", strings.Replace(base, "  - name: triggermesh\n    version: \"1.27.0\"", "  - name: triggermesh\n    version: \"9.9.9\"", 1), "no component triggermesh 9.9.9", lineOfText(base, "  - name: triggermesh", 0)},
		{"http url", strings.Replace(base, "url: https://", "url: http://", 1), "not an https URL", lineOfText(base, "url: https://", 0)},
		{"path escapes", strings.Replace(base, "path: istio/", "path: ../istio/", 1), "must be relative", lineOfText(base, "path: istio/", 0)},
		{"wrong schema", strings.Replace(base, "tmbox.dev/v1alpha1", "tmbox.dev/v9", 1), "unsupported schema", 1},
		{"two documents", base + "---\n" + base, "one YAML document", 0},
		{"empty", "", "empty catalog", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.catalog), "cat.yaml")
			if err == nil {
				t.Fatalf("want an error containing %q", tt.reason)
			}
			if !strings.Contains(err.Error(), tt.reason) || !strings.Contains(err.Error(), "cat.yaml") {
				t.Errorf("error %q lacks %q or the file name", err, tt.reason)
			}
			if tt.wantLine > 0 && !strings.Contains(err.Error(), fmt.Sprintf("line %d:", tt.wantLine)) {
				t.Errorf("error %q does not name line %d", err, tt.wantLine)
			}
		})
	}
}

func TestLoadCatalogFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "catalog.yaml")
	if err := os.WriteFile(f, []byte(validCatalog("1.30")), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(f)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.ReleaseNames(), []string{"1.30"}) {
		t.Errorf("got %v", c.ReleaseNames())
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("want an error for a missing file")
	}
}

func TestAllowsKubernetes(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	r, _ := c.Release("1.21")
	for v, want := range map[string]bool{"1.32.9": false, "1.33.0": true, "1.34.4": true, "v1.34.4+k3s1": true, "1.35.0": false} {
		if got := r.AllowsKubernetes(version.Must(version.NewVersion(v))); got != want {
			t.Errorf("1.21 allows %s = %v, want %v", v, got, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(validCatalog("1.21", "1.22")))
	f.Add(embeddedCatalog)
	f.Add([]byte("releases: [{name: 1.2}]"))
	f.Add([]byte("apiVersion: tmbox.dev/v1alpha1\nkind: Catalog\nreleases:\n- name: \"1.0\"\n  components: [{name: istio}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz")
		if err != nil {
			if c != nil {
				t.Fatal("catalog returned with an error")
			}
			return
		}
		// A catalog that validates is usable: every release resolves all
		// its components and has a Kubernetes range.
		for i := range c.Releases {
			r := &c.Releases[i]
			if len(r.ComponentList()) != len(ComponentNames()) || r.KubernetesRange() == "" {
				t.Fatalf("valid catalog with unusable release %+v", r)
			}
		}
	})
}
