package catalog

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// koCatalog is validCatalog with a ko resolution and an image rewrite on
// the triggermesh component.
func koCatalog() string {
	return strings.Replace(validCatalog("1.21"), "- name: triggermesh\n  version: \"1.27.0\"\n",
		"- name: triggermesh\n  version: \"1.27.0\"\n  ko:\n    prefix: ko://example.com/cmd/\n    registry: gcr.io/triggermesh\n    tag: v1.27.0\n  imageRewrites:\n    gcr.io/triggermesh/a:latest: gcr.io/triggermesh/a:v1.27.0\n", 1)
}

// TestParseRefusesBadImageRefs: every image reference the catalog produces
// must parse with go-containerregistry, and ko registries must be registry
// hosts; each is refused with its line (hardening item 7).
func TestParseRefusesBadImageRefs(t *testing.T) {
	base := koCatalog()
	if _, err := Parse([]byte(base), "cat.yaml"); err != nil {
		t.Fatalf("the base catalog is invalid: %v", err)
	}
	line := func(s, needle string) int {
		for i, l := range strings.Split(s, "\n") {
			if strings.Contains(l, needle) {
				return i + 1
			}
		}
		t.Fatalf("no %q in the catalog", needle)
		return 0
	}
	tests := []struct {
		name, catalog, reason, lineOf string
	}{
		{"ko registry with a scheme and spaces", strings.Replace(base, "registry: gcr.io/triggermesh", `registry: "http://not a registry"`, 1), "without a scheme", "http://not a registry"},
		{"ko registry with spaces", strings.Replace(base, "registry: gcr.io/triggermesh", `registry: "not a registry"`, 1), `registry "not a registry"`, "not a registry"},
		{"ko registry with an upper-case prefix", strings.Replace(base, "registry: gcr.io/triggermesh", `registry: gcr.io/TriggerMesh`, 1), "path prefix", "TriggerMesh"},
		{"ko tag", strings.Replace(base, "tag: v1.27.0", `tag: "v1 27"`, 1), "not an image tag", "v1 27"},
		{"rewrite target", strings.Replace(base, "gcr.io/triggermesh/a:latest: gcr.io/triggermesh/a:v1.27.0", `gcr.io/triggermesh/a:latest: "not an image ref!"`, 1), `rewrite target image "not an image ref!" is not an image reference`, "not an image ref!"},
		{"rewrite target with a scheme", strings.Replace(base, "gcr.io/triggermesh/a:latest: gcr.io/triggermesh/a:v1.27.0", `gcr.io/triggermesh/a:latest: "https://gcr.io/a:1"`, 1), "URL scheme", "https://gcr.io/a:1"},
		{"image", strings.Replace(base, "- example.com/istio:1.28.0", "- example.com/Istio:1.28.0", 1), `image "example.com/Istio:1.28.0" is not an image reference`, "example.com/Istio"},
		{"kind node image", strings.Replace(base, "kindest/node:v1.34.11@", "kindest/NODE:v1.34.11@", 1), "kind node image", "kindest/NODE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.catalog), "cat.yaml")
			if err == nil {
				t.Fatalf("want an error containing %q", tt.reason)
			}
			want := fmt.Sprintf("line %d:", line(tt.catalog, tt.lineOf))
			for _, s := range []string{"cat.yaml", tt.reason, want} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
		})
	}
}

func TestValidRegistryHost(t *testing.T) {
	for _, ok := range []string{"gcr.io", "gcr.io/triggermesh", "registry.corp:5000/tm/", "localhost:5000", "10.0.0.1:5000/a/b", "[::1]:5000/x", "docker.io/myorg"} {
		if err := ValidRegistryHost(ok); err != nil {
			t.Errorf("ValidRegistryHost(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "/x", "http://not a registry", "https://gcr.io", "not a registry", "gcr.io//x", "gcr.io/UPPER", "gcr.io/a b", "host:port", "-gcr.io", "gcr.io:5000:1", strings.Repeat("a", 1000) + " b"} {
		err := ValidRegistryHost(bad)
		if err == nil {
			t.Errorf("ValidRegistryHost(%q) = nil, want an error", bad)
			continue
		}
		if len(err.Error()) > 300 {
			t.Errorf("ValidRegistryHost: error of %d bytes echoes the value", len(err.Error()))
		}
	}
}

// TestCatalogSizeLimit: a catalog larger than MaxCatalogSize is refused
// with an error naming the file and the limit, without reading it all
// (hardening item 16).
func TestCatalogSizeLimit(t *testing.T) {
	f := filepath.Join(t.TempDir(), "huge.yaml")
	fh, err := os.Create(f)
	if err != nil {
		t.Fatal(err)
	}
	// A sparse 4 GiB file: reading it all would take seconds and gigabytes.
	if err := fh.Truncate(4 << 30); err != nil {
		t.Skipf("sparse file: %v", err)
	}
	fh.Close()
	start := time.Now()
	_, err = Load(f)
	if err == nil || !strings.Contains(err.Error(), f) || !strings.Contains(err.Error(), "limit of 8 MiB") {
		t.Errorf("got %v, want an error naming %s and the 8 MiB limit", err, f)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("refusing a huge catalog took %s", d)
	}
	big := make([]byte, MaxCatalogSize+1)
	if _, err := Parse(big, "big.yaml"); err == nil || !strings.Contains(err.Error(), "big.yaml") || !strings.Contains(err.Error(), "8 MiB") {
		t.Errorf("Parse: got %v", err)
	}
	// A catalog of exactly the limit is read (and then fails as YAML, not
	// for its size).
	exact := filepath.Join(t.TempDir(), "exact.yaml")
	if err := os.WriteFile(exact, append([]byte(validCatalog("1.21")), make([]byte, int(MaxCatalogSize)-len(validCatalog("1.21")))...), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(exact); err != nil && strings.Contains(err.Error(), "limit") {
		t.Errorf("a catalog of exactly the limit: %v", err)
	}
}

// TestUnknownReleaseQuotesShort: a huge release name is not echoed whole
// (hardening item 14).
func TestUnknownReleaseQuotesShort(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Release(strings.Repeat("x", 10<<20))
	if err == nil || len(err.Error()) > 300 || !strings.Contains(err.Error(), `"`+strings.Repeat("x", 64)+`"…`) {
		t.Errorf("got an error of %d bytes: %.300s", len(fmt.Sprint(err)), err)
	}
	if _, err := c.Release("9.9"); err == nil || !strings.Contains(err.Error(), `unknown release "9.9"; known releases: 1.21, 1.22, 1.23`) {
		t.Errorf("got %v", err)
	}
}

func TestQuoteShort(t *testing.T) {
	if got := QuoteShort("1.21"); got != `"1.21"` {
		t.Errorf("got %s", got)
	}
	long := strings.Repeat("é", 100) // 200 bytes, 2 per rune
	got := QuoteShort(long)
	if got != `"`+strings.Repeat("é", 32)+`"… (200 bytes)` {
		t.Errorf("got %s", got)
	}
}
