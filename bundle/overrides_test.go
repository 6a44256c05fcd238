package bundle

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestValidateImageOverrides(t *testing.T) {
	digest := "@sha256:" + strings.Repeat("a", 64)
	tests := []struct {
		name      string
		overrides map[string]string
		want      []string // each error names the original and says why; nil: valid
	}{
		{"none", nil, nil},
		{"pinned replacement", map[string]string{"gcr.io/triggermesh/x:v1.27.0": "reg.example/tm/x" + digest}, nil},
		{"tag and digest", map[string]string{"gcr.io/triggermesh/x:v1.27.0": "reg.example/tm/x:v1.27.0" + digest}, nil},
		{"tag only", map[string]string{"gcr.io/triggermesh/x:v1.27.0": "reg.example/tm/x:v1.27.0"}, []string{`image override "gcr.io/triggermesh/x:v1.27.0": replacement "reg.example/tm/x:v1.27.0" is not pinned by digest`}},
		{"short digest", map[string]string{"a/b:1": "reg.example/b@sha256:abc"}, []string{`image override "a/b:1": replacement "reg.example/b@sha256:abc" is not pinned by digest`}},
		{"empty replacement", map[string]string{"a/b:1": ""}, []string{`image override "a/b:1": no replacement`}},
		{"bad original", map[string]string{"a b:1": "reg.example/b" + digest}, []string{`image override "a b:1": image "a b:1" is not an image reference`}},
		{"bad replacement", map[string]string{"a/b:1": "UP/b" + digest}, []string{`image override "a/b:1": replacement: image`}},
		{"itself", map[string]string{"reg.example/b" + digest: "reg.example/b" + digest}, []string{"the replacement is the original"}},
		{"chain", map[string]string{"a/b:1": "reg.example/b" + digest, "reg.example/b" + digest: "reg.example/c" + digest}, []string{`image override "a/b:1": replacement "reg.example/b@sha256:` + strings.Repeat("a", 14)}},
		{"every problem", map[string]string{"a/b:1": "x:1", "a/c:1": "y:1"}, []string{`"a/b:1"`, `"a/c:1"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateImageOverrides(tt.overrides)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted %v", tt.overrides)
			}
			var oe *OverrideError
			if !errors.As(err, &oe) {
				t.Errorf("%v is not an *OverrideError", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestOverrideImages(t *testing.T) {
	got := OverrideImages([]string{"c:1", "a:1", "b:1", "a:1"}, map[string]string{"a:1": "z@sha256:" + strings.Repeat("1", 64), "c:1": "b:1", "absent:1": "q:1"})
	want := []string{"b:1", "z@sha256:" + strings.Repeat("1", 64)}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestBundleWithOverrides: a bundle created with an override holds the
// replacement instead of the original and records the override; verify
// accepts it and refuses a manifest whose overrides disagree with its
// images; overrides a bundle cannot carry are refused before anything is
// written.
func TestBundleWithOverrides(t *testing.T) {
	f := newBundleFixture(t, 1<<10)
	orig := f.host + "/triggermesh/controller:1.0.0"
	rebuilt, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := rebuilt.Digest()
	replacement := f.host + "/rebuilt/triggermesh/controller@" + d.String()
	r, _ := name.ParseReference(replacement)
	if err := remote.Write(r, rebuilt, f.ropts...); err != nil {
		t.Fatal(err)
	}
	// The original need not exist: the bundle never pulls it.
	if err := remote.Delete(mustRef(t, orig), f.ropts...); err != nil {
		t.Fatal(err)
	}
	opts := f.options()
	opts.ImageOverrides = map[string]string{orig: replacement}
	path, data, m := f.create(t, opts)
	if !maps.Equal(m.ImageOverrides, opts.ImageOverrides) {
		t.Errorf("manifest overrides %v, want %v", m.ImageOverrides, opts.ImageOverrides)
	}
	refs := map[string]string{}
	for _, img := range m.Images {
		refs[img.Ref] = img.Digest
	}
	if _, ok := refs[orig]; ok {
		t.Errorf("the bundle holds the overridden original %s", orig)
	}
	if refs[replacement] != d.String() {
		t.Errorf("the bundle holds %s as %q, want %s", replacement, refs[replacement], d)
	}
	vm, err := Verify(context.Background(), bytes.NewReader(data), VerifyOptions{})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if !maps.Equal(vm.ImageOverrides, opts.ImageOverrides) {
		t.Errorf("verified overrides %v", vm.ImageOverrides)
	}
	x, err := Extract(context.Background(), path, t.TempDir(), VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	imgs, err := x.Manifest.ReleaseImages(x.Catalog, fixtureRelease)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(imgs, func(i Image) bool { return i.Ref == replacement }) || slices.ContainsFunc(imgs, func(i Image) bool { return i.Ref == orig }) {
		t.Errorf("ReleaseImages lists %v: want the replacement, not the original", imgs)
	}

	// A rebuilt manifest whose overrides disagree with its images.
	for _, tt := range []struct {
		name string
		edit func(m *Manifest)
		want string
	}{
		{"override dropped", func(m *Manifest) { m.ImageOverrides = nil }, "images differ"},
		{"override of no image", func(m *Manifest) { m.ImageOverrides["example.com/nothing:1"] = replacement }, "example.com/nothing:1"},
		{"replacement not pinned", func(m *Manifest) { m.ImageOverrides[orig] = f.host + "/rebuilt:1" }, "not pinned by digest"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bad := rebuildBundle(t, data, nil, func(_ map[string][]byte, m *Manifest) { tt.edit(m) })
			_, err := Verify(context.Background(), bytes.NewReader(bad), VerifyOptions{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("verify: %v, want it refused with %q", err, tt.want)
			}
			var oe *OverrideError
			if errors.As(err, &oe) {
				t.Errorf("a bad bundle reads as the user's override error: %v", err)
			}
		})
	}

	// Overrides a bundle cannot carry: refused, nothing written.
	rel, _ := f.cat.Release(fixtureRelease)
	for _, tt := range []struct {
		name      string
		overrides map[string]string
		want      string
	}{
		{"not an image of the release", map[string]string{f.host + "/other:1": replacement}, "release 1.30 has no such image"},
		{"the kind node image", map[string]string{rel.KindNodeImage: replacement}, "the kind node image is not overridable"},
		{"not pinned", map[string]string{orig: f.host + "/rebuilt:1"}, "not pinned by digest"},
		{"replacement missing", map[string]string{orig: f.host + "/rebuilt/nothing@sha256:" + strings.Repeat("5", 64)}, "cannot be pulled"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			work := t.TempDir()
			o := f.options()
			o.WorkDir = work
			o.ImageOverrides = tt.overrides
			var buf bytes.Buffer
			_, err := Create(context.Background(), &buf, o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Create: %v, want %q", err, tt.want)
			}
			if entries, _ := os.ReadDir(work); buf.Len() != 0 || len(entries) != 0 {
				t.Errorf("a refused Create wrote %d bytes, %d work entries", buf.Len(), len(entries))
			}
		})
	}
}
