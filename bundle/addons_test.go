package bundle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/tmbox/tmbox/internal/testimage"
)

// addonImage pushes an image of its own to the fixture's registry that
// shares the layer of the releases' images, and returns its reference.
func (f *bundleFixture) addonImage(t testing.TB, repo string) string {
	t.Helper()
	d, err := name.NewDigest(f.host + "/istio/pilot@" + f.shared.String())
	if err != nil {
		t.Fatal(err)
	}
	shared, err := remote.Layer(d, f.ropts...)
	if err != nil {
		t.Fatal(err)
	}
	ref := f.host + "/" + repo
	testimage.Push(t, ref, 1024, []v1.Layer{shared}, f.ropts...)
	return ref
}

// chartDigest is sha256:HEX of data.
func chartDigest(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// fixtureAddons are two add-ons: one with an image of its own and one
// image of a release, one with none.
func (f *bundleFixture) fixtureAddons(t testing.TB) []AddonSource {
	t.Helper()
	wait := f.addonImage(t, "tenant/wait:1.0")
	gw := []byte("gateway chart archive")
	redis := []byte("redis chart archive")
	return []AddonSource{
		{Name: "tenant-gateway", Chart: "gateway", Version: "1.0.0", AppVersion: "1.0.0", ChartDigest: "sha256:" + strings.Repeat("1", 64), Archive: gw,
			Images: []string{wait, f.host + "/istio/pilot:1.0.0", wait}},
		{Name: "cache", Chart: "redis", Version: "19.0.1", ChartDigest: chartDigest(redis), Archive: redis},
	}
}

func TestBundleAddons(t *testing.T) {
	f := newBundleFixture(t, 1024)
	srcs := f.fixtureAddons(t)
	wait := srcs[0].Images[0]
	opts := f.options()
	opts.Addons = srcs
	var progress []string
	opts.Progress = func(_, _ int, what string) { progress = append(progress, what) }
	path, data, m := f.create(t, opts)

	if len(m.Addons) != 2 || m.Addons[0].Name != "cache" || m.Addons[1].Name != "tenant-gateway" {
		t.Fatalf("add-ons %+v, want cache and tenant-gateway, sorted", m.Addons)
	}
	gw := m.Addons[1]
	sum := sha256.Sum256(srcs[0].Archive)
	if gw.Chart != "gateway" || gw.Version != "1.0.0" || gw.AppVersion != "1.0.0" || gw.Path != "addons/tenant-gateway.tgz" ||
		gw.SHA256 != hex.EncodeToString(sum[:]) || gw.ChartDigest != srcs[0].ChartDigest ||
		!slices.Equal(gw.Images, []string{f.host + "/istio/pilot:1.0.0", wait}) {
		t.Errorf("tenant-gateway %+v", gw)
	}
	if m.Addons[0].Images == nil || len(m.Addons[0].Images) != 0 {
		t.Errorf("cache images %#v, want an empty list", m.Addons[0].Images)
	}
	i := slices.IndexFunc(m.Files, func(file File) bool { return file.Path == gw.Path })
	if i < 0 || m.Files[i].SHA256 != gw.SHA256 || m.Files[i].Size != int64(len(srcs[0].Archive)) {
		t.Errorf("files do not list %s as the add-on says", gw.Path)
	}
	refs := make([]string, len(m.Images))
	for i, img := range m.Images {
		refs[i] = img.Ref
	}
	if len(m.Images) != len(f.stored)+1 || !slices.Contains(refs, wait) {
		t.Errorf("images %v, want the releases' %d and %s", refs, len(f.stored), wait)
	}
	if !slices.ContainsFunc(progress, func(s string) bool { return s == "add-on tenant-gateway (chart gateway 1.0.0)" }) {
		t.Errorf("progress %q does not name the add-on", progress)
	}
	imgs, err := m.AddonImages("tenant-gateway")
	if err != nil || len(imgs) != 2 || imgs[1].Ref != wait {
		t.Errorf("AddonImages: %v %v", imgs, err)
	}
	if _, err := m.AddonImages("nope"); err == nil || !strings.Contains(err.Error(), `no add-on "nope"`) {
		t.Errorf("AddonImages of an unknown add-on: %v", err)
	}

	// Verified, extracted, and the same bytes on a second run.
	if _, err := Verify(context.Background(), bytes.NewReader(data), VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
	b, err := Extract(context.Background(), path, t.TempDir(), VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, entry, err := b.AddonArchive("tenant-gateway")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, srcs[0].Archive) || entry.Name != "tenant-gateway" {
		t.Errorf("extracted archive %s: %q %v", p, got, err)
	}
	lp, err := layout.FromPath(b.LayoutDir)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := layoutRefs(lp)
	if err != nil || stored[wait] == "" {
		t.Errorf("the layout does not hold %s: %v %v", wait, stored, err)
	}
	_, again, _ := f.create(t, opts)
	if !bytes.Equal(data, again) {
		t.Error("a bundle with add-ons is not reproducible")
	}

	// A bundle without add-ons has no addons key: its manifest is what it
	// was before add-ons existed.
	_, plain, _ := f.create(t, f.options())
	off := entryOffsets(t, plain)
	if bytes.Contains(plain[off[ManifestName][1]:off[ManifestName][2]], []byte(`"addons"`)) {
		t.Error("a manifest without add-ons names them")
	}
	if m2, _, err := Inspect(path); err != nil || len(m2.Addons) != 2 {
		t.Errorf("Inspect: %v %v", m2, err)
	}
}

func TestCreateRefusesAddons(t *testing.T) {
	f := newBundleFixture(t, 128)
	good := f.fixtureAddons(t)
	tests := []struct {
		name string
		mut  func([]AddonSource) []AddonSource
		want string
	}{
		{"bad name", func(a []AddonSource) []AddonSource { a[0].Name = "Tenant_Gateway"; return a }, `add-on "Tenant_Gateway": the name is not a DNS label`},
		{"named twice", func(a []AddonSource) []AddonSource { a[1].Name = a[0].Name; return a }, `add-on "tenant-gateway": named twice`},
		{"no archive", func(a []AddonSource) []AddonSource { a[1].Archive = nil; return a }, `add-on "cache": no chart archive`},
		{"bad chart digest", func(a []AddonSource) []AddonSource { a[1].ChartDigest = "sha256:abc"; return a }, `add-on "cache": chart digest "sha256:abc" is not`},
		{"no version", func(a []AddonSource) []AddonSource { a[1].Version = ""; return a }, `add-on "cache": no chart name or version`},
		{"bad image", func(a []AddonSource) []AddonSource { a[1].Images = []string{"UPPER/case::x"}; return a }, `add-on "cache": image "UPPER/case::x"`},
		{"image not in its registry", func(a []AddonSource) []AddonSource {
			a[1].Images = []string{f.host + "/tenant/missing:1.0"}
			return a
		}, f.host + "/tenant/missing:1.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := f.options()
			opts.WorkDir = t.TempDir()
			opts.Addons = tt.mut(slices.Clone(good))
			_, err := Create(context.Background(), io.Discard, opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want %q", err, tt.want)
			}
			assertNothingIn(t, opts.WorkDir)
		})
	}
}

func TestVerifyRefusesAddonTampering(t *testing.T) {
	f := newBundleFixture(t, 256)
	opts := f.options()
	opts.Addons = f.fixtureAddons(t)
	_, data, _ := f.create(t, opts)
	tests := []struct {
		name   string
		edit   func(files map[string][]byte, m *Manifest)
		entry  string
		reason string
	}{
		{"another chart archive, digests recomputed", func(files map[string][]byte, _ *Manifest) {
			files["addons/cache.tgz"] = []byte("an attacker's chart")
		}, ManifestName, `add-on "cache": its chart archive addons/cache.tgz is listed with sha256`},
		{"an add-on's image not stored", func(_ map[string][]byte, m *Manifest) {
			m.Addons[1].Images = append(m.Addons[1].Images, f.host+"/tenant/other:1.0")
			slices.Sort(m.Addons[1].Images)
		}, ManifestName, "image " + f.host + "/tenant/other:1.0 is not among the images"},
		{"an add-on dropped, its image kept", func(files map[string][]byte, m *Manifest) {
			delete(files, "addons/tenant-gateway.tgz")
			m.Addons = m.Addons[:1]
		}, ManifestName, "images differ"},
		{"a chart archive no add-on names", func(files map[string][]byte, _ *Manifest) {
			files["addons/extra.tgz"] = []byte("x")
		}, ManifestName, "file addons/extra.tgz is not the chart archive of an add-on"},
		{"an archive elsewhere", func(_ map[string][]byte, m *Manifest) {
			m.Addons[0].Path = "assets/cache.tgz"
		}, ManifestName, `add-on "cache": path "assets/cache.tgz", want addons/cache.tgz`},
		{"archive missing", func(files map[string][]byte, _ *Manifest) {
			delete(files, "addons/cache.tgz")
		}, ManifestName, `add-on "cache": its chart archive addons/cache.tgz is not listed`},
		{"add-ons out of order", func(_ map[string][]byte, m *Manifest) {
			m.Addons[0], m.Addons[1] = m.Addons[1], m.Addons[0]
		}, ManifestName, "add-ons are not sorted and unique"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := rebuildBundle(t, data, nil, tt.edit)
			_, err := Verify(context.Background(), bytes.NewReader(bad), VerifyOptions{})
			checkBundleError(t, "Verify", err, tt.entry, tt.reason)
			path := filepath.Join(t.TempDir(), "bad.tar")
			if err := os.WriteFile(path, bad, 0o644); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "extract")
			_, err = Extract(context.Background(), path, dir, VerifyOptions{})
			checkBundleError(t, "Extract", err, tt.entry, tt.reason)
			assertNothingIn(t, dir)
		})
	}
	t.Run("chart archive bytes flipped", func(t *testing.T) {
		bad := bytes.Clone(data)
		bad[entryOffsets(t, data)["addons/cache.tgz"][1]] ^= 1
		_, err := Verify(context.Background(), bytes.NewReader(bad), VerifyOptions{})
		checkBundleError(t, "Verify", err, "addons/cache.tgz", "sha256")
	})
	if _, err := Verify(context.Background(), bytes.NewReader(rebuildBundle(t, data, nil, func(map[string][]byte, *Manifest) {})), VerifyOptions{}); err != nil {
		t.Errorf("the bundle rebuilt unchanged: %v", err)
	}
}
