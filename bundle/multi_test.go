package bundle

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/tmbox/tmbox/catalog"
)

// multiFixture is a catalog of releases 1.21, 1.22 and 1.23 whose images
// (in an in-process registry) all share one layer, whose TriggerMesh
// components (their assets and images) are the same in every release, and
// whose 1.22 and 1.23 share a kind node image.
type multiFixture struct {
	cat    *catalog.Catalog
	mirror string
	ropts  []remote.Option
	// images maps each release to its images, kind node image included.
	images map[string][]string
	// only maps each release to an image no other release has.
	only map[string]string
}

var multiReleases = []string{"1.21", "1.22", "1.23"}

func newMultiFixture(t testing.TB) *multiFixture {
	t.Helper()
	host := startRegistry(t, nil)
	f := &multiFixture{ropts: []remote.Option{remote.WithTransport(http.DefaultTransport)}, images: map[string][]string{}, only: map[string]string{}, mirror: t.TempDir()}
	shared, err := random.Layer(2048, types.DockerLayer)
	if err != nil {
		t.Fatal(err)
	}
	pushed := map[string]string{} // repo:tag → ref as the catalog names it
	push := func(repoTag string, byDigest bool) string {
		if ref, ok := pushed[repoTag]; ok {
			return ref
		}
		own, err := random.Layer(1024, types.DockerLayer)
		if err != nil {
			t.Fatal(err)
		}
		img, err := mutate.AppendLayers(empty.Image, shared, own)
		if err != nil {
			t.Fatal(err)
		}
		ref := host + "/" + repoTag
		if err := remote.Write(mustRef(t, ref), img, f.ropts...); err != nil {
			t.Fatal(err)
		}
		if byDigest {
			d, _ := img.Digest()
			ref = host + "/" + strings.Split(repoTag, ":")[0] + ":" + strings.Split(repoTag, ":")[1] + "@" + d.String()
		}
		pushed[repoTag] = ref
		return ref
	}
	var b strings.Builder
	b.WriteString("apiVersion: tmbox.dev/v1alpha1\nkind: Catalog\nreleases:\n")
	kinds := map[string]string{}
	for _, r := range multiReleases {
		node := "kindest/node:v1.34.0"
		if r == "1.21" {
			node = "kindest/node:v1.33.0"
		}
		kinds[r] = push(node, true)
		fmt.Fprintf(&b, "- name: %q\n  kindNodeImage: %s\n  host: {cpus: 4, memory: 8Gi, disk: 40Gi}\n  components:\n", r, kinds[r])
		for _, n := range catalog.ComponentNames() {
			fmt.Fprintf(&b, "  - name: %s\n    version: %q\n", n, componentVersion(n, r))
		}
	}
	b.WriteString("components:\n")
	done := map[string]bool{}
	for _, r := range multiReleases {
		f.images[r] = append(f.images[r], kinds[r])
		for i, n := range catalog.ComponentNames() {
			v := componentVersion(n, r)
			img := push(n+"/controller:"+v, i%2 == 1)
			f.images[r] = append(f.images[r], img)
			if n == catalog.KnativeServing {
				f.only[r] = img
			}
			if done[n+"@"+v] {
				continue
			}
			done[n+"@"+v] = true
			fmt.Fprintf(&b, "- name: %s\n  version: %q\n  kubernetes: \">= 1.30\"\n  assets:\n", n, v)
			for j := range 2 {
				p := fmt.Sprintf("%s/%s/%d-%s.yaml", n, v, j, n)
				data := []byte(fmt.Sprintf("# %s %s file %d\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s-%d}\n", n, v, j, n, j))
				a := assetFor(p, data)
				writeFile(t, filepath.Join(f.mirror, p), data)
				fmt.Fprintf(&b, "  - name: %s\n    path: %s\n    url: %s\n    size: %d\n    sha256: %s\n", a.Name, a.Path, a.URL, a.Size, a.SHA256)
				if j == 1 {
					b.WriteString("    optional: true\n")
				}
			}
			fmt.Fprintf(&b, "  images:\n  - %q\n", img)
		}
		slices.Sort(f.images[r])
	}
	cat, err := catalog.Parse([]byte(b.String()), "multi fixture")
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	f.cat = cat
	return f
}

func writeFile(t testing.TB, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (f *multiFixture) options(releases ...string) CreateOptions {
	return CreateOptions{Catalog: f.cat, Releases: releases, Source: catalog.Mirror{Dir: f.mirror}, RemoteOptions: f.ropts}
}

func (f *multiFixture) create(t testing.TB, opts CreateOptions) (string, []byte, *Manifest) {
	t.Helper()
	var buf bytes.Buffer
	m, err := Create(context.Background(), &buf, opts)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "multi.bundle")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p, buf.Bytes(), m
}

// TestMultiReleaseBundle: a bundle of 1.21, 1.22 and 1.23 holds each
// release's catalog entry, assets and images, shared files and layers
// once, describes the newest release in Release, serves two hops, and
// verifies.
func TestMultiReleaseBundle(t *testing.T) {
	f := newMultiFixture(t)
	path, data, m := f.create(t, f.options("1.23", "1.21", "1.22", "1.22"))

	newest, _ := f.cat.Release("1.23")
	if m.Release != "1.23" || !slices.Equal(m.Components, newest.Components) || m.KindNodeImage != newest.KindNodeImage {
		t.Errorf("manifest header: release %s, components %v, kind %s; want 1.23's", m.Release, m.Components, m.KindNodeImage)
	}
	if got := m.ReleaseNames(); !slices.Equal(got, multiReleases) {
		t.Errorf("ReleaseNames() = %v, want %v", got, multiReleases)
	}
	for _, e := range m.Releases {
		r, _ := f.cat.Release(e.Name)
		if !slices.Equal(e.Components, r.Components) || e.KindNodeImage != r.KindNodeImage {
			t.Errorf("entry %s: %+v", e.Name, e)
		}
	}
	var union []string
	for _, r := range multiReleases {
		union = append(union, f.images[r]...)
	}
	slices.Sort(union)
	union = slices.Compact(union)
	var got []string
	for _, img := range m.Images {
		got = append(got, img.Ref)
	}
	if !slices.Equal(got, union) {
		t.Errorf("images\n%v\nwant\n%v", got, union)
	}
	// TriggerMesh's assets, the same in every release, are stored once.
	tm := 0
	for _, file := range m.Files {
		if strings.HasPrefix(file.Path, AssetsDir+"/"+catalog.TriggerMesh+"/") {
			tm++
		}
	}
	if tm != 2 {
		t.Errorf("%d TriggerMesh assets listed, want 2", tm)
	}

	vm, err := Verify(context.Background(), bytes.NewReader(data), VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(vm.ReleaseNames(), multiReleases) {
		t.Errorf("verified releases %v", vm.ReleaseNames())
	}
	b, err := Extract(context.Background(), path, t.TempDir(), VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(b.Catalog.ReleaseNames(), multiReleases) {
		t.Errorf("bundle catalog releases %v", b.Catalog.ReleaseNames())
	}
	// Every component of every release reads from the extracted assets.
	for _, r := range multiReleases {
		rel, _ := b.Catalog.Release(r)
		for _, c := range rel.ComponentList() {
			if _, err := catalog.FetchComponent(context.Background(), catalog.Mirror{Dir: b.AssetsDir}, c); err != nil {
				t.Errorf("release %s: %v", r, err)
			}
		}
		imgs, err := m.ReleaseImages(b.Catalog, r)
		if err != nil {
			t.Fatal(err)
		}
		var refs []string
		for _, img := range imgs {
			refs = append(refs, img.Ref)
		}
		if !slices.Equal(refs, f.images[r]) {
			t.Errorf("ReleaseImages(%s) = %v, want %v", r, refs, f.images[r])
		}
	}

	// Hops: from the extracted catalog and from the file alone.
	for what, cat := range map[string]*catalog.Catalog{"extracted": b.Catalog, "full": f.cat} {
		var names []string
		for _, h := range m.Hops(cat) {
			names = append(names, h.Name())
		}
		if !slices.Equal(names, []string{"1.21→1.22", "1.22→1.23"}) {
			t.Errorf("%s catalog: hops %v", what, names)
		}
	}
	im, cat, err := InspectCatalog(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Hops(cat)) != 2 {
		t.Errorf("InspectCatalog: %d hops", len(im.Hops(cat)))
	}

	// Shared layers are stored once: the layout holds exactly the unique
	// digests its images reference.
	lp, err := layout.FromPath(b.LayoutDir)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := lp.ImageIndex()
	unique := map[string]bool{}
	refs := 0
	for _, bi := range m.Images {
		h, _ := v1.NewHash(bi.Digest)
		img, err := root.Image(h)
		if err != nil {
			t.Fatal(err)
		}
		mf, _ := img.Manifest()
		for _, d := range append([]string{bi.Digest, mf.Config.Digest.String()}, layerDigests(mf)...) {
			unique[d] = true
			refs++
		}
	}
	blobs, err := os.ReadDir(filepath.Join(b.LayoutDir, "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	if len(blobs) != len(unique) {
		t.Errorf("%d blobs stored, want %d unique digests (%d references)", len(blobs), len(unique), refs)
	}
	if refs <= len(unique) {
		t.Errorf("%d references to %d digests: the fixture shares no layer", refs, len(unique))
	}
}

func layerDigests(mf *v1.Manifest) []string {
	var out []string
	for _, l := range mf.Layers {
		out = append(out, l.Digest.String())
	}
	return out
}

// TestMultiReleaseManifestHelpers: ReleaseNames, Holds and Missing on one
// and several releases.
func TestMultiReleaseManifestHelpers(t *testing.T) {
	single := &Manifest{Release: "1.23"}
	multi := &Manifest{Release: "1.22", Releases: []ReleaseEntry{{Name: "1.21"}, {Name: "1.22"}}}
	tests := []struct {
		name      string
		m         *Manifest
		names     []string
		holds     string
		held      bool
		plan      *catalog.Plan
		missing   []string
		wantError bool
	}{
		{"single", single, []string{"1.23"}, "1.23", true, &catalog.Plan{From: "", To: "1.23", Hops: []catalog.Hop{{To: "1.23"}}}, nil, false},
		{"single, upgrade from outside", single, []string{"1.23"}, "1.22", false, &catalog.Plan{From: "1.22", To: "1.23", Hops: []catalog.Hop{{From: "1.22", To: "1.23"}}}, []string{"1.22"}, false},
		{"multi, walk", multi, []string{"1.21", "1.22"}, "1.21", true, &catalog.Plan{From: "1.21", To: "1.22", Hops: []catalog.Hop{{From: "1.21", To: "1.22"}}}, nil, false},
		{"multi, beyond", multi, []string{"1.21", "1.22"}, "1.23", false, &catalog.Plan{From: "1.21", To: "1.23", Hops: []catalog.Hop{{From: "1.21", To: "1.22"}, {From: "1.22", To: "1.23"}}}, []string{"1.23"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.m.ReleaseNames(); !slices.Equal(got, tt.names) {
				t.Errorf("ReleaseNames() = %v, want %v", got, tt.names)
			}
			if got := tt.m.Holds(tt.holds); got != tt.held {
				t.Errorf("Holds(%s) = %v", tt.holds, got)
			}
			if got := tt.m.Missing(tt.plan); !slices.Equal(got, tt.missing) {
				t.Errorf("Missing = %v, want %v", got, tt.missing)
			}
		})
	}
}

// TestMultiReleaseCreateOptions: Release and Releases together, one
// release through Releases, and unknown releases.
func TestMultiReleaseCreateOptions(t *testing.T) {
	f := newMultiFixture(t)
	_, alone, _ := f.create(t, CreateOptions{Catalog: f.cat, Release: "1.22", Source: catalog.Mirror{Dir: f.mirror}, RemoteOptions: f.ropts})
	tests := []struct {
		name     string
		release  string
		releases []string
		want     string // "" = success
	}{
		{"one release through Releases is a single-release bundle", "", []string{"1.22"}, ""},
		{"Release among Releases", "1.22", []string{"1.22"}, ""},
		{"Release not among Releases", "1.21", []string{"1.22", "1.23"}, `release "1.21" is not among the releases 1.22, 1.23`},
		{"unknown release", "", []string{"1.22", "9.9"}, "unknown release"},
		{"no release", "", nil, "no release named"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := f.options(tt.releases...)
			opts.Release = tt.release
			var buf bytes.Buffer
			m, err := Create(context.Background(), &buf, opts)
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("got %v, want %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.Releases != nil || !bytes.Equal(buf.Bytes(), alone) {
				t.Errorf("a bundle of 1.22 through Releases differs from one through Release (releases %v)", m.Releases)
			}
			if bytes.Contains(buf.Bytes()[:4096], []byte(`"releases"`)) {
				t.Error(`a single-release manifest has a "releases" key`)
			}
		})
	}
}

// TestMultiReleaseTamper: tampered multi-release bundles, re-signed with
// the key (as an attacker holding it would) so only the content checks
// stand, are refused by Verify (bundle verify) and Extract (install,
// upgrade) with the same error; one edited without the key fails the
// signature.
func TestMultiReleaseTamper(t *testing.T) {
	f := newMultiFixture(t)
	key, _ := GenerateSigningKey()
	other, _ := GenerateSigningKey()
	pub := key.Public().(ed25519.PublicKey)
	opts := f.options(multiReleases...)
	opts.SignKey = key
	_, signed, m := f.create(t, opts)
	oldest := f.only["1.21"]
	oldestDigest := m.Images[slices.IndexFunc(m.Images, func(img Image) bool { return img.Ref == oldest })].Digest
	var oldestAsset string
	for _, file := range m.Files {
		if strings.HasPrefix(file.Path, AssetsDir+"/"+catalog.KnativeServing+"/1.21.0/") {
			oldestAsset = file.Path
			break
		}
	}
	dropIndex := func(ref string) func(files map[string][]byte, _ *Manifest) {
		return func(files map[string][]byte, _ *Manifest) {
			editIndex(t, files, func(im *v1.IndexManifest) {
				im.Manifests = slices.DeleteFunc(im.Manifests, func(d v1.Descriptor) bool { return d.Annotations[refNameAnnotation] == ref })
			})
		}
	}

	tests := []struct {
		name   string
		key    ed25519.PrivateKey
		edit   func(files map[string][]byte, m *Manifest)
		entry  string
		reason string // "" with entry "" = the bundle verifies
	}{
		{"untouched", key, func(map[string][]byte, *Manifest) {}, "", ""},
		{"index drops an image of the oldest release", key, dropIndex(oldest), indexName, "does not name " + oldest + " as " + oldestDigest},
		{"index and manifest drop an image of the oldest release", key, func(files map[string][]byte, m *Manifest) {
			dropIndex(oldest)(files, m)
			m.Images = slices.DeleteFunc(m.Images, func(img Image) bool { return img.Ref == oldest })
		}, ManifestName, "images differ from releases 1.21, 1.22, 1.23's images in catalog.yaml: the catalog names " + oldest + ", the manifest does not list it"},
		{"index names an extra image", key, func(files map[string][]byte, _ *Manifest) {
			editIndex(t, files, func(im *v1.IndexManifest) {
				extra := im.Manifests[0]
				extra.Annotations = map[string]string{refNameAnnotation: "example.com/extra:1.0"}
				im.Manifests = append(im.Manifests, extra)
			})
		}, indexName, "names example.com/extra:1.0, which the manifest does not list"},
		{"catalog entry swapped", key, func(files map[string][]byte, _ *Manifest) {
			// Release 1.22 pins 1.21's Istio.
			c := string(files[CatalogName])
			i := strings.Index(c, `name: "1.22"`)
			j := i + strings.Index(c[i:], "version: 1.29.0")
			files[CatalogName] = []byte(c[:j] + "version: 1.28.0" + c[j+len("version: 1.29.0"):])
		}, CatalogName, "release 1.22 differs from the manifest's"},
		{"catalog holds another release", key, func(files map[string][]byte, _ *Manifest) {
			c := bytes.Replace(files[CatalogName], []byte(`name: "1.23"`), []byte(`name: "1.24"`), 1)
			files[CatalogName] = bytes.ReplaceAll(c, []byte("version: 1.23.0"), []byte("version: 1.24.0"))
		}, CatalogName, "does not hold exactly releases 1.21, 1.22, 1.23 (it holds 1.21, 1.22, 1.24)"},
		{"Releases drops the middle release", key, func(_ map[string][]byte, m *Manifest) {
			m.Releases = slices.Delete(m.Releases, 1, 2)
		}, CatalogName, "does not hold exactly releases 1.21, 1.23 (it holds 1.21, 1.22, 1.23)"},
		{"Releases entry pins other components", key, func(_ map[string][]byte, m *Manifest) {
			m.Releases[0].Components = slices.Clone(m.Releases[1].Components)
		}, CatalogName, "release 1.21 differs from the manifest's"},
		{"Releases entry names another kind node image", key, func(_ map[string][]byte, m *Manifest) {
			m.Releases[0].KindNodeImage = m.Releases[1].KindNodeImage
		}, CatalogName, "release 1.21 differs from the manifest's"},
		{"Releases out of order", key, func(_ map[string][]byte, m *Manifest) {
			m.Releases[0], m.Releases[1] = m.Releases[1], m.Releases[0]
		}, ManifestName, "releases: 1.21 follows 1.22: releases are listed oldest first"},
		{"Releases without the newest", key, func(_ map[string][]byte, m *Manifest) {
			m.Releases = m.Releases[:2]
		}, ManifestName, "the newest, 1.22, is not the manifest's release 1.23"},
		{"Release not the newest", key, func(_ map[string][]byte, m *Manifest) {
			m.Release = "1.22"
		}, ManifestName, "the newest, 1.23, is not the manifest's release 1.22"},
		{"Releases of one", key, func(_ map[string][]byte, m *Manifest) {
			m.Releases = m.Releases[2:]
		}, ManifestName, "a bundle of one release names it in release only"},
		{"asset of the oldest release missing", key, func(files map[string][]byte, _ *Manifest) {
			delete(files, oldestAsset)
		}, oldestAsset, "missing: catalog.yaml pins it for release 1.21"},
		{"Releases edited without the key", other, func(_ map[string][]byte, m *Manifest) {
			m.Releases = slices.Delete(m.Releases, 1, 2)
		}, SignatureName, "does not verify"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := rebuildBundle(t, signed, tt.key, tt.edit)
			vo := VerifyOptions{PublicKey: pub, RequireSignature: true}
			_, verr := Verify(context.Background(), bytes.NewReader(bad), vo)
			path := filepath.Join(t.TempDir(), "bad.bundle")
			if err := os.WriteFile(path, bad, 0o644); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "extract")
			b, eerr := Extract(context.Background(), path, dir, vo)
			if tt.entry == "" {
				if verr != nil || eerr != nil {
					t.Fatalf("Verify: %v; Extract: %v", verr, eerr)
				}
				if !slices.Equal(b.Manifest.ReleaseNames(), multiReleases) {
					t.Errorf("releases %v", b.Manifest.ReleaseNames())
				}
				return
			}
			if verr == nil || eerr == nil {
				t.Fatalf("verdicts: Verify %v, Extract %v; want both to refuse", verr, eerr)
			}
			if verr.Error() != eerr.Error() {
				t.Errorf("verdicts differ:\nVerify:  %v\nExtract: %v", verr, eerr)
			}
			checkBundleError(t, "Verify", verr, tt.entry, tt.reason)
			checkBundleError(t, "Extract", eerr, tt.entry, tt.reason)
			assertNothingIn(t, dir)
		})
	}
}

// TestMultiReleaseHopsRefused: a bundle of 1.21 and 1.23 (no 1.22) serves
// no hop: Knative moves one minor per hop.
func TestMultiReleaseHopsRefused(t *testing.T) {
	f := newMultiFixture(t)
	path, _, m := f.create(t, f.options("1.21", "1.23"))
	if hops := m.Hops(f.cat); len(hops) != 0 {
		t.Errorf("full catalog: hops %v", hops)
	}
	im, cat, err := InspectCatalog(path)
	if err != nil {
		t.Fatal(err)
	}
	if hops := im.Hops(cat); len(hops) != 0 {
		t.Errorf("bundle catalog: hops %v", hops)
	}
	p, _ := f.cat.Plan("1.21", "1.23", nil, catalog.PlanOptions{})
	if got := m.Missing(p); !slices.Equal(got, []string{"1.22"}) {
		t.Errorf("Missing = %v, want [1.22]", got)
	}
}

// TestPushReleaseImages: PushImages of one release's images (one upgrade
// hop's) pushes those and nothing else, and refuses an image the bundle
// does not list.
func TestPushReleaseImages(t *testing.T) {
	f := newMultiFixture(t)
	path, _, m := f.create(t, f.options(multiReleases...))
	b, err := Extract(context.Background(), path, t.TempDir(), VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	imgs, err := m.ReleaseImages(b.Catalog, "1.21")
	if err != nil {
		t.Fatal(err)
	}
	registry := startRegistry(t, nil) + "/mirror"
	got, err := PushImages(context.Background(), b, registry, imgs, f.ropts...)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(f.images["1.21"]) {
		t.Errorf("pushed %d images, want 1.21's %d", len(got), len(f.images["1.21"]))
	}
	for _, img := range m.Images {
		dst, _ := RegistryRef(registry, img.Ref, img.Digest)
		_, err := remote.Head(mustRef(t, dst), f.ropts...)
		if held := slices.Contains(f.images["1.21"], img.Ref); held != (err == nil) {
			t.Errorf("%s: of 1.21 %v, in the registry: %v", img.Ref, held, err)
		}
	}
	if _, err := m.ReleaseImages(b.Catalog, "1.20"); err == nil || !strings.Contains(err.Error(), "does not hold release") {
		t.Errorf("ReleaseImages of a release not held: %v", err)
	}
	forged := imgs[0]
	forged.Digest = "sha256:" + strings.Repeat("0", 64)
	if _, err := PushImages(context.Background(), b, registry, []Image{forged}, f.ropts...); err == nil || !strings.Contains(err.Error(), "is not an image of the bundle") {
		t.Errorf("forged image: %v", err)
	}
}
