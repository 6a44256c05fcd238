package bundle

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/tmbox/tmbox/catalog"
)

// startRegistry serves an in-process registry on 127.0.0.1 and returns its
// host:port. wrap, when set, wraps its handler.
func startRegistry(t testing.TB, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h) // binds 127.0.0.1
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// bundleFixture is an upstream registry holding small images, a mirror of
// tiny assets and a two-release catalog whose newest release ("1.30")
// points at them.
type bundleFixture struct {
	cat    *catalog.Catalog
	mirror string
	host   string
	ropts  []remote.Option
	// stored maps each image ref of release 1.30 to the digest a
	// linux/amd64 bundle stores for it.
	stored map[string]string
	shared v1.Hash // the layer every image shares
	// indexRef names the multi-platform image (linux/amd64, linux/arm64,
	// linux/s390x).
	indexRef string
}

const fixtureRelease = "1.30"

func newBundleFixture(t testing.TB, layerSize int64) *bundleFixture {
	t.Helper()
	host := startRegistry(t, nil)
	f := &bundleFixture{host: host, stored: map[string]string{}, ropts: []remote.Option{remote.WithTransport(http.DefaultTransport)}}
	layer := func() v1.Layer {
		l, err := random.Layer(layerSize, types.DockerLayer)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	shared := layer()
	var err error
	if f.shared, err = shared.Digest(); err != nil {
		t.Fatal(err)
	}
	newImage := func() v1.Image {
		img, err := mutate.AppendLayers(empty.Image, shared, layer())
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	push := func(ref string, t2 remote.Taggable) string {
		r, err := name.ParseReference(ref)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Push(r, t2, f.ropts...); err != nil {
			t.Fatalf("push %s: %v", ref, err)
		}
		d, err := t2.(interface{ Digest() (v1.Hash, error) }).Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d.String()
	}
	images := map[string][]string{}
	tagged := func(comp, repo string) string {
		ref := host + "/" + repo
		f.stored[ref] = push(ref, newImage())
		images[comp] = append(images[comp], ref)
		return ref
	}
	pilot := tagged(catalog.Istio, "istio/pilot:1.0.0")
	tagged(catalog.Istio, "istio/proxyv2:1.0.0")
	tagged(catalog.KnativeEventing, "knative/eventing/controller:1.0.0")
	tagged(catalog.TriggerMesh, "triggermesh/controller:1.0.0")
	tagged(catalog.TriggerMeshCore, "triggermesh/core:1.0.0")
	images[catalog.TriggerMeshCore] = append(images[catalog.TriggerMeshCore], pilot) // shared between components

	// An image pinned by digest.
	img := newImage()
	d := push(host+"/knative/serving/controller:build", img)
	byDigest := host + "/knative/serving/controller@" + d
	f.stored[byDigest] = d
	images[catalog.KnativeServing] = []string{byDigest}

	// A multi-platform index.
	var adds []mutate.IndexAddendum
	var amd64 string
	for _, p := range []string{"linux/amd64", "linux/arm64", "linux/s390x"} {
		img := newImage()
		pl, _ := v1.ParsePlatform(p)
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: pl}})
		if p == "linux/amd64" {
			dd, _ := img.Digest()
			amd64 = dd.String()
		}
	}
	f.indexRef = host + "/knative/net-istio/controller:1.0.0"
	push(f.indexRef, mutate.AppendManifests(empty.Index, adds...))
	f.stored[f.indexRef] = amd64
	images[catalog.NetIstio] = []string{f.indexRef}

	// The kind node image, pinned by digest.
	kd := push(host+"/kindest/node:v1.34.0", newImage())
	kind := host + "/kindest/node:v1.34.0@" + kd
	f.stored[kind] = kd

	var b strings.Builder
	files := map[string][]byte{}
	b.WriteString("apiVersion: tmbox.dev/v1alpha1\nkind: Catalog\nreleases:\n")
	for _, r := range []string{"1.29", fixtureRelease} {
		k := kind
		if r != fixtureRelease {
			k = "kindest/node:v1.33.0@sha256:" + strings.Repeat("4", 64)
		}
		fmt.Fprintf(&b, "- name: %q\n  kindNodeImage: %s\n  host: {cpus: 4, memory: 8Gi, disk: 40Gi}\n  components:\n", r, k)
		for _, n := range catalog.ComponentNames() {
			fmt.Fprintf(&b, "  - name: %s\n    version: %q\n", n, componentVersion(n, r))
		}
	}
	b.WriteString("components:\n")
	for _, r := range []string{"1.29", fixtureRelease} {
		for _, n := range catalog.ComponentNames() {
			v := componentVersion(n, r)
			if r != fixtureRelease && (n == catalog.TriggerMesh || n == catalog.TriggerMeshCore) {
				continue // shared with 1.30
			}
			fmt.Fprintf(&b, "- name: %s\n  version: %q\n  kubernetes: \">= 1.30\"\n  assets:\n", n, v)
			for i := range 2 {
				p := fmt.Sprintf("%s/%s/%d-%s.yaml", n, v, i, n)
				data := []byte(fmt.Sprintf("# %s %s file %d\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s-%d}\n", n, v, i, n, i))
				a := assetFor(p, data)
				if r == fixtureRelease {
					files[p] = data
				} else {
					a.SHA256 = strings.Repeat("b", 64) // not in the mirror: must not be fetched
				}
				fmt.Fprintf(&b, "  - name: %s\n    path: %s\n    url: %s\n    size: %d\n    sha256: %s\n", a.Name, a.Path, a.URL, a.Size, a.SHA256)
				if i == 1 {
					b.WriteString("    optional: true\n")
				}
			}
			b.WriteString("  images:\n")
			imgs := images[n]
			if r != fixtureRelease {
				imgs = []string{"example.com/" + n + ":" + v}
			}
			for _, img := range imgs {
				fmt.Fprintf(&b, "  - %q\n", img)
			}
		}
	}
	cat, err := catalog.Parse([]byte(b.String()), "fixture")
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	f.cat = cat
	f.mirror = t.TempDir()
	for p, data := range files {
		full := filepath.Join(f.mirror, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f *bundleFixture) options(platforms ...string) CreateOptions {
	return CreateOptions{
		Catalog:       f.cat,
		Release:       fixtureRelease,
		Source:        catalog.Mirror{Dir: f.mirror},
		Platforms:     platforms,
		RemoteOptions: f.ropts,
	}
}

// create writes a bundle to a file and returns its path and bytes.
func (f *bundleFixture) create(t testing.TB, opts CreateOptions) (string, []byte, *Manifest) {
	t.Helper()
	var buf bytes.Buffer
	m, err := Create(context.Background(), &buf, opts)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "bundle.tar")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p, buf.Bytes(), m
}

func TestBundleRoundTrip(t *testing.T) {
	f := newBundleFixture(t, 2048)
	key, err := GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	opts := f.options()
	opts.SignKey = key
	var progress []string
	opts.Progress = func(done, total int, what string) {
		progress = append(progress, fmt.Sprintf("%d/%d %s", done, total, what))
	}
	path, data, m := f.create(t, opts)
	if last := progress[len(progress)-1]; !strings.HasPrefix(last, fmt.Sprintf("%d/%d ", len(progress), len(progress))) {
		t.Errorf("progress ends with %q after %d steps", last, len(progress))
	}

	checkTarForm(t, data, true)
	rel, _ := f.cat.Release(fixtureRelease)
	if m.Schema != Schema || m.Release != fixtureRelease || m.KindNodeImage != rel.KindNodeImage || !slices.Equal(m.Platforms, []string{"linux/amd64"}) {
		t.Errorf("manifest header %+v", m)
	}
	for _, img := range m.Images {
		if want := f.stored[img.Ref]; img.Digest != want {
			t.Errorf("%s: stored %s, want %s", img.Ref, img.Digest, want)
		}
		if img.Size <= 2*2048 || !strings.Contains(img.MediaType, "manifest") {
			t.Errorf("%s: size %d media type %s", img.Ref, img.Size, img.MediaType)
		}
	}
	if len(m.Images) != len(f.stored) {
		t.Errorf("%d images, want %d", len(m.Images), len(f.stored))
	}

	vm, err := Verify(context.Background(), bytes.NewReader(data), VerifyOptions{PublicKey: key.Public().(ed25519.PublicKey), RequireSignature: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(vm.Files) != len(m.Files) {
		t.Errorf("verified manifest has %d files, created %d", len(vm.Files), len(m.Files))
	}
	im, signed, err := Inspect(path)
	if err != nil || !signed || im.Release != fixtureRelease {
		t.Errorf("Inspect: %v %v %v", im, signed, err)
	}

	dir := t.TempDir()
	b, err := Extract(context.Background(), path, dir, VerifyOptions{PublicKey: key.Public().(ed25519.PublicKey)})
	if err != nil {
		t.Fatal(err)
	}
	if !b.Signed || filepath.Dir(b.Dir) != dir {
		t.Errorf("extracted %+v", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("extract left %d entries in %s, want 1", len(entries), dir)
	}
	// Every asset of the release, optional ones included, reads through a
	// Mirror of the extracted assets.
	n := 0
	for _, c := range rel.ComponentList() {
		data, err := catalog.FetchComponent(context.Background(), catalog.Mirror{Dir: b.AssetsDir}, c)
		if err != nil {
			t.Error(err)
		}
		n += len(data)
	}
	if n != 12 {
		t.Errorf("fetched %d assets, want 12", n)
	}
	// The catalog holds exactly the release.
	cat, err := catalog.Load(b.CatalogFile)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cat.ReleaseNames(), []string{fixtureRelease}) || len(cat.Components) != len(catalog.ComponentNames()) {
		t.Errorf("bundle catalog: releases %v, %d components", cat.ReleaseNames(), len(cat.Components))
	}
	if got := cat.Latest().Images(); !slices.Equal(got, rel.Images()) {
		t.Errorf("bundle catalog images %v, want %v", got, rel.Images())
	}
	// The layout holds every image.
	lp, err := layout.FromPath(b.LayoutDir)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	for _, bi := range m.Images {
		h, _ := v1.NewHash(bi.Digest)
		img, err := idx.Image(h)
		if err != nil {
			t.Errorf("%s: %v", bi.Ref, err)
			continue
		}
		if ls, err := img.Layers(); err != nil || len(ls) != 2 {
			t.Errorf("%s: layers %d %v", bi.Ref, len(ls), err)
		}
		if err := validateImage(img); err != nil {
			t.Errorf("%s: %v", bi.Ref, err)
		}
	}
}

// validateImage reads every layer and checks its digest.
func validateImage(img v1.Image) error {
	ls, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		h := sha256.New()
		_, err = io.Copy(h, rc)
		rc.Close()
		if err != nil {
			return err
		}
		d, _ := l.Digest()
		if got := hex.EncodeToString(h.Sum(nil)); got != d.Hex {
			return fmt.Errorf("layer %s hashes to %s", d, got)
		}
	}
	return nil
}

// checkTarForm checks the normalised headers and the entry order.
func checkTarForm(t *testing.T, data []byte, signed bool) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(data))
	var names []string
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
		if hdr.Typeflag != tar.TypeReg || hdr.Mode != 0o644 || !hdr.ModTime.Equal(time.Unix(0, 0)) || hdr.Uid != 0 || hdr.Gid != 0 || hdr.Uname != "" || hdr.Gname != "" {
			t.Errorf("%s: header not normalised: %+v", hdr.Name, hdr)
		}
	}
	want := []string{ManifestName}
	if signed {
		want = append(want, SignatureName)
	}
	if !slices.Equal(names[:len(want)], want) {
		t.Errorf("first entries %v, want %v", names[:len(want)], want)
	}
	rest := names[len(want):]
	if !slices.IsSorted(rest) {
		t.Errorf("entries not sorted: %v", rest)
	}
	for _, p := range []string{CatalogName, "images/oci-layout", "images/index.json"} {
		if !slices.Contains(rest, p) {
			t.Errorf("no %s in %v", p, rest)
		}
	}
}

func TestBundlePlatforms(t *testing.T) {
	f := newBundleFixture(t, 512)
	t.Run("several platforms keep an index of those", func(t *testing.T) {
		path, _, m := f.create(t, f.options("linux/arm64", "linux/amd64"))
		if !slices.Equal(m.Platforms, []string{"linux/amd64", "linux/arm64"}) {
			t.Errorf("platforms %v", m.Platforms)
		}
		i := slices.IndexFunc(m.Images, func(b Image) bool { return b.Ref == f.indexRef })
		bi := m.Images[i]
		if !types.MediaType(bi.MediaType).IsIndex() {
			t.Fatalf("%s stored as %s", bi.Ref, bi.MediaType)
		}
		b, err := Extract(context.Background(), path, t.TempDir(), VerifyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		lp, _ := layout.FromPath(b.LayoutDir)
		root, _ := lp.ImageIndex()
		h, _ := v1.NewHash(bi.Digest)
		ii, err := root.ImageIndex(h)
		if err != nil {
			t.Fatal(err)
		}
		im, _ := ii.IndexManifest()
		var got []string
		for _, d := range im.Manifests {
			got = append(got, d.Platform.String())
			if _, err := ii.Image(d.Digest); err != nil {
				t.Errorf("%s: %v", d.Platform, err)
			}
		}
		if !slices.Equal(got, []string{"linux/amd64", "linux/arm64"}) {
			t.Errorf("stored index platforms %v", got)
		}
	})
	t.Run("a missing platform is refused", func(t *testing.T) {
		_, err := Create(context.Background(), io.Discard, f.options("linux/riscv64"))
		if err == nil || !strings.Contains(err.Error(), "no linux/riscv64 manifest") || !strings.Contains(err.Error(), f.indexRef) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("a bad platform is refused", func(t *testing.T) {
		if _, err := Create(context.Background(), io.Discard, f.options("amd64")); err == nil {
			t.Error("want an error")
		}
	})
}

func TestBundleReproducible(t *testing.T) {
	f := newBundleFixture(t, 4096)
	key, _ := GenerateSigningKey()
	opts := f.options()
	opts.SignKey = key
	_, a, _ := f.create(t, opts)
	opts.WorkDir = t.TempDir()
	_, b, _ := f.create(t, opts)
	sa, sb := sha256.Sum256(a), sha256.Sum256(b)
	if sa != sb {
		t.Errorf("two bundles of the same release differ: %x vs %x (%d vs %d bytes)", sa, sb, len(a), len(b))
	}
	if entries, _ := os.ReadDir(opts.WorkDir); len(entries) != 0 {
		t.Errorf("scratch space left in WorkDir: %v", entries)
	}
}

func TestBundleSharedLayersStoredOnce(t *testing.T) {
	f := newBundleFixture(t, 1024)
	path, _, m := f.create(t, f.options())
	b, err := Extract(context.Background(), path, t.TempDir(), VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lp, _ := layout.FromPath(b.LayoutDir)
	root, _ := lp.ImageIndex()
	unique := map[string]bool{}
	perImage := 0
	for _, bi := range m.Images {
		h, _ := v1.NewHash(bi.Digest)
		img, err := root.Image(h)
		if err != nil {
			t.Fatal(err)
		}
		mf, _ := img.Manifest()
		blobs := []string{bi.Digest, mf.Config.Digest.String()}
		for _, l := range mf.Layers {
			blobs = append(blobs, l.Digest.String())
		}
		perImage += len(blobs)
		for _, d := range blobs {
			unique[d] = true
		}
		if mf.Layers[0].Digest != f.shared {
			t.Errorf("%s does not start with the shared layer", bi.Ref)
		}
	}
	entries, err := os.ReadDir(filepath.Join(b.LayoutDir, "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(unique) {
		t.Errorf("%d blobs stored, want %d unique (%d counting shared ones per image)", len(entries), len(unique), perImage)
	}
	if len(unique) != perImage-(len(m.Images)-1) {
		t.Errorf("%d unique blobs of %d: the shared layer should be the only duplicate", len(unique), perImage)
	}
	n := 0
	for _, file := range m.Files {
		if file.Path == "images/blobs/sha256/"+f.shared.Hex {
			n++
		}
	}
	if n != 1 {
		t.Errorf("shared layer listed %d times", n)
	}
}

func TestBundlePinnedDigestMustMatch(t *testing.T) {
	f := newBundleFixture(t, 256)
	rel, _ := f.cat.Release(fixtureRelease)
	serving, _ := rel.Component(catalog.KnativeServing)
	pinned := serving.Images[0]
	_, pinnedDigest, _ := strings.Cut(pinned, "@")
	// A registry that answers the pinned digest with another image.
	other := f.stored[f.host+"/istio/pilot:1.0.0"]
	host := startRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.URL.Path = strings.Replace(r.URL.Path, "/manifests/"+pinnedDigest, "/manifests/"+other, 1)
			h.ServeHTTP(w, r)
		})
	})
	img, _ := remote.Image(mustRef(t, f.host+"/istio/pilot:1.0.0"), f.ropts...)
	if err := remote.Write(mustRef(t, host+"/knative/serving/controller@"+other), img, f.ropts...); err != nil {
		t.Fatal(err)
	}
	_, err := pullImage(layout.Path(t.TempDir()), host+"/knative/serving/controller@"+pinnedDigest, []v1.Platform{{OS: "linux", Architecture: "amd64"}}, f.ropts)
	if err == nil || !strings.Contains(err.Error(), pinnedDigest) {
		t.Errorf("got %v, want a digest mismatch naming %s", err, pinnedDigest)
	}
}

// entryOffsets maps each entry to the offsets of its header, its data and
// the end of its data.
func entryOffsets(t testing.TB, data []byte) map[string][3]int64 {
	t.Helper()
	cr := &countingReader{r: bytes.NewReader(data)}
	tr := tar.NewReader(cr)
	out := map[string][3]int64{}
	prevEnd := int64(0)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[hdr.Name] = [3]int64{prevEnd, cr.n, cr.n + hdr.Size}
		if _, err := io.Copy(io.Discard, tr); err != nil {
			t.Fatal(err)
		}
		prevEnd = cr.n + (512-hdr.Size%512)%512
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// assertNothingIn fails unless dir is empty or absent.
func assertNothingIn(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if len(entries) > 0 {
		t.Errorf("%s holds %v after a failed extraction", dir, entries)
	}
}

func TestBundleTamper(t *testing.T) {
	f := newBundleFixture(t, 4096)
	key, _ := GenerateSigningKey()
	pub := key.Public().(ed25519.PublicKey)
	opts := f.options()
	opts.SignKey = key
	_, signed, m := f.create(t, opts)
	_, unsigned, _ := f.create(t, f.options())
	off := entryOffsets(t, signed)
	manifest := signed[off[ManifestName][1]:off[ManifestName][2]]

	asset := m.Files[0].Path
	var blob File
	for _, file := range m.Files {
		if strings.HasPrefix(file.Path, "images/blobs/") && file.Size > blob.Size {
			blob = file
		}
	}
	// A digit of a file's sha256 in the manifest: flipping its low bit
	// keeps it a hex digit, so the manifest still parses.
	target := m.Files[3]
	digit := bytes.Index(manifest, []byte(target.SHA256)) + strings.IndexAny(target.SHA256, "0123456789")

	tests := []struct {
		name   string
		bundle []byte
		offset int64 // into bundle
		entry  string
		reason string
		opts   VerifyOptions
	}{
		{"manifest schema", signed, off[ManifestName][1] + int64(bytes.Index(manifest, []byte("tmbox.dev/"))), ManifestName, "unsupported schema", VerifyOptions{PublicKey: pub}},
		{"manifest not JSON", signed, off[ManifestName][1], ManifestName, "not a bundle manifest", VerifyOptions{PublicKey: pub}},
		{"manifest digest, signed", signed, off[ManifestName][1] + int64(digit), SignatureName, "does not verify", VerifyOptions{PublicKey: pub}},
		{"manifest digest, unsigned", unsigned, entryOffsets(t, unsigned)[ManifestName][1] + int64(digit), target.Path, "sha256", VerifyOptions{}},
		{"signature", signed, off[SignatureName][1] + 10, SignatureName, "", VerifyOptions{PublicKey: pub}},
		{"signature, no key", signed, off[SignatureName][1] + 10, SignatureName, "base64", VerifyOptions{}},
		{"asset", signed, off["assets/"+strings.TrimPrefix(asset, "assets/")][1] + 5, asset, "sha256", VerifyOptions{PublicKey: pub}},
		{"blob", signed, off[blob.Path][1] + blob.Size/2, blob.Path, "sha256", VerifyOptions{PublicKey: pub}},
		{"blob, last byte", signed, off[blob.Path][1] + blob.Size - 1, blob.Path, "sha256", VerifyOptions{PublicKey: pub}},
		{"catalog", signed, off[CatalogName][1] + 3, CatalogName, "sha256", VerifyOptions{PublicKey: pub}},
		{"tar header", signed, off[blob.Path][0] + 3, "(entry after " + m.Files[slices.IndexFunc(m.Files, func(f File) bool { return f.Path == blob.Path })-1].Path + ")", "unreadable tar header", VerifyOptions{PublicKey: pub}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := bytes.Clone(tt.bundle)
			if tt.name == "signature, no key" {
				bad[tt.offset] = '*' // not a base64 character
			} else {
				bad[tt.offset] ^= 0x01
			}
			_, err := Verify(context.Background(), bytes.NewReader(bad), tt.opts)
			checkBundleError(t, "Verify", err, tt.entry, tt.reason)

			path := filepath.Join(t.TempDir(), "bad.tar")
			if err := os.WriteFile(path, bad, 0o644); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "extract")
			b, err := Extract(context.Background(), path, dir, tt.opts)
			if b != nil {
				t.Errorf("Extract returned %+v", b)
			}
			checkBundleError(t, "Extract", err, tt.entry, tt.reason)
			assertNothingIn(t, dir)
		})
	}
	// The untouched bundles verify (an unsigned one without a key: a key
	// requires a signature).
	for data, opts := range map[*[]byte]VerifyOptions{&signed: {PublicKey: pub}, &unsigned: {}} {
		if _, err := Verify(context.Background(), bytes.NewReader(*data), opts); err != nil {
			t.Error(err)
		}
	}
}

func checkBundleError(t *testing.T, what string, err error, entry, reason string) {
	t.Helper()
	var be *Error
	if !errors.As(err, &be) {
		t.Fatalf("%s: got %v (%T), want a *Error", what, err, err)
	}
	if be.Entry != entry || !strings.Contains(be.Reason, reason) {
		t.Errorf("%s: got %q, want entry %s and reason containing %q", what, err, entry, reason)
	}
	if !strings.HasPrefix(err.Error(), "bundle entry "+entry+": ") {
		t.Errorf("%s: message %q", what, err)
	}
}

// evilTar returns prefix followed by one entry with hdr and content.
func evilTar(t testing.TB, prefix []byte, hdr *tar.Header, content []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.Write(prefix)
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(hdr); err != nil {
		t.Fatal(err)
	}
	if content != nil {
		tw.Write(content)
		tw.Close()
	}
	return buf.Bytes()
}

func TestBundleRefusesUnsafeEntries(t *testing.T) {
	f := newBundleFixture(t, 256)
	_, data, m := f.create(t, f.options())
	// The valid manifest entry, then the evil one.
	prefix := data[:entryOffsets(t, data)[m.Files[0].Path][0]]
	reg := func(name string) *tar.Header {
		return &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: 5, Mode: 0o644}
	}
	tests := []struct {
		name    string
		hdr     *tar.Header
		content []byte
		reason  string
		max     int64
	}{
		{"dotdot", reg("../outside"), []byte("evil\n"), "escapes with ..", 0},
		{"dotdot inside", reg("assets/../../outside"), []byte("evil\n"), "escapes with ..", 0},
		{"absolute", reg("/tmp/outside"), []byte("evil\n"), "absolute path", 0},
		{"symlink", &tar.Header{Typeflag: tar.TypeSymlink, Name: "assets/link", Linkname: "../../outside"}, nil, "symbolic link", 0},
		{"hardlink", &tar.Header{Typeflag: tar.TypeLink, Name: "assets/hard", Linkname: "/etc/passwd"}, nil, "hard link", 0},
		{"char device", &tar.Header{Typeflag: tar.TypeChar, Name: "assets/null", Devmajor: 1, Devminor: 3}, nil, "character device", 0},
		{"directory", &tar.Header{Typeflag: tar.TypeDir, Name: "assets/", Mode: 0o755}, nil, "directory", 0},
		{"absurd size", &tar.Header{Typeflag: tar.TypeReg, Name: "assets/huge", Size: 100 << 30, Mode: 0o644}, nil, "more than the limit", 0},
		{"over MaxFileSize", &tar.Header{Typeflag: tar.TypeReg, Name: "assets/big", Size: 1 << 30, Mode: 0o644}, nil, "more than the limit of 1073741823", 1<<30 - 1},
		{"unlisted", reg("assets/extra.yaml"), []byte("evil\n"), "not listed in the manifest", 0},
		{"manifest again", reg(ManifestName), []byte("evil\n"), "appears again", 0},
	}
	for _, tt := range tests {
		for _, first := range []bool{true, false} {
			if first && (tt.name == "unlisted" || tt.name == "manifest again") {
				continue
			}
			name := tt.name
			if first {
				name += ", first entry"
			}
			t.Run(name, func(t *testing.T) {
				p := prefix
				if first {
					p = nil
				}
				bad := evilTar(t, p, tt.hdr, tt.content)
				opts := VerifyOptions{MaxFileSize: tt.max}
				_, err := Verify(context.Background(), bytes.NewReader(bad), opts)
				checkBundleError(t, "Verify", err, tt.hdr.Name, tt.reason)

				parent := t.TempDir()
				path := filepath.Join(parent, "bad.tar")
				if err := os.WriteFile(path, bad, 0o644); err != nil {
					t.Fatal(err)
				}
				dir := filepath.Join(parent, "work", "dir")
				_, err = Extract(context.Background(), path, dir, opts)
				checkBundleError(t, "Extract", err, tt.hdr.Name, tt.reason)
				assertNothingIn(t, dir)
				if entries, _ := os.ReadDir(parent); len(entries) != 2 {
					t.Errorf("parent holds %v, want bad.tar and work", entries)
				}
				if entries, _ := os.ReadDir(filepath.Join(parent, "work")); len(entries) != 1 {
					t.Errorf("parent/work holds %v, want dir", entries)
				}
				if _, err := os.Lstat(filepath.Join(parent, "outside")); err == nil {
					t.Error("a file was written outside the extraction directory")
				}
			})
		}
	}
	t.Run("not a bundle", func(t *testing.T) {
		_, err := Verify(context.Background(), strings.NewReader("hello, world"), VerifyOptions{})
		checkBundleError(t, "Verify", err, ManifestName, "")
	})
	t.Run("truncated", func(t *testing.T) {
		_, err := Verify(context.Background(), bytes.NewReader(data[:len(data)/2]), VerifyOptions{})
		var be *Error
		if !errors.As(err, &be) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("missing entry", func(t *testing.T) {
		// The bundle without its last file.
		last := m.Files[len(m.Files)-1]
		cut := data[:entryOffsets(t, data)[last.Path][0]]
		_, err := Verify(context.Background(), bytes.NewReader(append(bytes.Clone(cut), make([]byte, 1024)...)), VerifyOptions{})
		checkBundleError(t, "Verify", err, last.Path, "missing from the bundle")
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := Verify(ctx, bytes.NewReader(data), VerifyOptions{})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("got %v", err)
		}
	})
}

// rewriteBundle re-tars a bundle, replacing the signature entry's content
// with sig (nil drops it).
func rewriteBundle(t testing.TB, data, sig []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		content, _ := io.ReadAll(tr)
		if hdr.Name == SignatureName {
			if sig == nil {
				continue
			}
			content = sig
		}
		hdr.Size = int64(len(content))
		tw.WriteHeader(hdr)
		tw.Write(content)
	}
	tw.Close()
	return buf.Bytes()
}

func TestBundleSigning(t *testing.T) {
	f := newBundleFixture(t, 256)
	key, _ := GenerateSigningKey()
	other, _ := GenerateSigningKey()
	pub := key.Public().(ed25519.PublicKey)
	otherPub := other.Public().(ed25519.PublicKey)
	opts := f.options()
	opts.SignKey = key
	_, signed, _ := f.create(t, opts)
	_, unsigned, _ := f.create(t, f.options())
	shortSig := rewriteBundle(t, signed, []byte(base64.StdEncoding.EncodeToString(make([]byte, 10))))
	otherSig := rewriteBundle(t, signed, []byte(base64.StdEncoding.EncodeToString(ed25519.Sign(other, []byte("something else")))))

	tests := []struct {
		name       string
		bundle     []byte
		opts       VerifyOptions
		wantSigned bool
		reason     string // "" = success
	}{
		{"signed, right key", signed, VerifyOptions{PublicKey: pub, RequireSignature: true}, true, ""},
		{"signed, wrong key", signed, VerifyOptions{PublicKey: otherPub}, false, "does not verify"},
		{"signed, no key", signed, VerifyOptions{}, true, ""},
		{"unsigned, signature required", unsigned, VerifyOptions{RequireSignature: true}, false, "signature is required"},
		{"unsigned, key but not required", unsigned, VerifyOptions{PublicKey: pub}, false, "a public key was given"}, // hardening item 4: a key requires a signature
		{"unsigned, no key", unsigned, VerifyOptions{}, false, ""},
		{"short signature, no key", shortSig, VerifyOptions{}, false, "has 10 bytes"},
		{"signature of something else", otherSig, VerifyOptions{PublicKey: pub}, false, "does not verify"},
		{"signature of something else, no key", otherSig, VerifyOptions{}, true, ""},
		{"signature dropped, required", rewriteBundle(t, signed, nil), VerifyOptions{PublicKey: pub, RequireSignature: true}, false, "signature is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, verr := Verify(context.Background(), bytes.NewReader(tt.bundle), tt.opts)
			path := filepath.Join(t.TempDir(), "b.tar")
			os.WriteFile(path, tt.bundle, 0o644)
			dir := t.TempDir()
			b, eerr := Extract(context.Background(), path, dir, tt.opts)
			if tt.reason == "" {
				if verr != nil || eerr != nil {
					t.Fatalf("Verify: %v; Extract: %v", verr, eerr)
				}
				if b.Signed != tt.wantSigned {
					t.Errorf("Signed = %v, want %v", b.Signed, tt.wantSigned)
				}
				return
			}
			checkBundleError(t, "Verify", verr, SignatureName, tt.reason)
			checkBundleError(t, "Extract", eerr, SignatureName, tt.reason)
			assertNothingIn(t, dir)
		})
	}
}

func TestSigningKeys(t *testing.T) {
	key, err := GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	privPEM, err := MarshalPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, err := MarshalPublicKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(privPEM, []byte("-----BEGIN PRIVATE KEY-----")) || !bytes.HasPrefix(pubPEM, []byte("-----BEGIN PUBLIC KEY-----")) {
		t.Errorf("PEM:\n%s%s", privPEM, pubPEM)
	}
	priv2, err := ParsePrivateKey(privPEM)
	if err != nil || !priv2.Equal(key) {
		t.Errorf("private key round trip: %v", err)
	}
	pub2, err := ParsePublicKey(pubPEM)
	if err != nil || !pub2.Equal(key.Public()) {
		t.Errorf("public key round trip: %v", err)
	}
	for _, tt := range []struct {
		name string
		fn   func([]byte) error
		in   []byte
	}{
		{"public as private", func(b []byte) error { _, err := ParsePrivateKey(b); return err }, pubPEM},
		{"private as public", func(b []byte) error { _, err := ParsePublicKey(b); return err }, privPEM},
		{"not PEM", func(b []byte) error { _, err := ParsePublicKey(b); return err }, []byte("hello")},
		{"garbage DER", func(b []byte) error { _, err := ParsePrivateKey(b); return err }, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")},
	} {
		if err := tt.fn(tt.in); err == nil {
			t.Errorf("%s: want an error", tt.name)
		}
	}
	if _, err := MarshalPrivateKey(ed25519.PrivateKey{1, 2}); err == nil {
		t.Error("want an error for a short key")
	}
}

func TestRegistryRef(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	d2 := "sha256:" + strings.Repeat("cd", 32)
	tests := []struct {
		registry, ref, digest string
		want                  string // "" = error
	}{
		{"reg.local:5000/mirror", "docker.io/istio/pilot:1.28.6", d, "reg.local:5000/mirror/istio/pilot:1.28.6@" + d},
		{"reg.local:5000", "docker.io/istio/pilot:1.28.6", d, "reg.local:5000/istio/pilot:1.28.6@" + d},
		{"reg.local:5000/", "istio/pilot:1.28.6", d, "reg.local:5000/istio/pilot:1.28.6@" + d},
		{"reg.local", "busybox:1.28", d, "reg.local/library/busybox:1.28@" + d},
		{"reg.local", "docker.io/library/busybox:1.28", d, "reg.local/library/busybox:1.28@" + d},
		{"reg.local", "index.docker.io/library/busybox:1.28", d, "reg.local/library/busybox:1.28@" + d},
		{"reg.local/a/b", "busybox", d, "reg.local/a/b/library/busybox@" + d},
		{"10.0.0.1:5000/tm", "gcr.io/knative-releases/knative.dev/serving/cmd/queue@" + d2, d, "10.0.0.1:5000/tm/knative-releases/knative.dev/serving/cmd/queue@" + d},
		{"10.0.0.1:5000/tm", "gcr.io/knative-releases/queue@" + d2, "", "10.0.0.1:5000/tm/knative-releases/queue@" + d2},
		{"localhost:5000", "kindest/node:v1.34.11@" + d2, d2, "localhost:5000/kindest/node:v1.34.11@" + d2},
		{"localhost:5000", "kindest/node:v1.34.11@" + d2, "", "localhost:5000/kindest/node:v1.34.11@" + d2},
		{"reg.local", "quay.io/org/img:v1", "", ""},           // nothing to pin
		{"reg.local", "quay.io/org/img:v1", "sha256:abc", ""}, // bad digest
		{"", "quay.io/org/img:v1", d, ""},                  // no registry
		{"reg.local/UPPER", "quay.io/org/img:v1", d, ""},   // bad prefix
		{"https://reg.local", "quay.io/org/img:v1", d, ""}, // a URL, not a host
		{"reg.local", "quay.io/org/img:bad tag", d, ""},    // bad ref
		{"reg.local:5000/mirror", "127.0.0.1:5000/x/y:1.0.0", d, "reg.local:5000/mirror/x/y:1.0.0@" + d},
	}
	for _, tt := range tests {
		got, err := RegistryRef(tt.registry, tt.ref, tt.digest)
		if tt.want == "" {
			if err == nil {
				t.Errorf("RegistryRef(%q, %q, %q) = %q, want an error", tt.registry, tt.ref, tt.digest, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("RegistryRef(%q, %q, %q) = %q, %v; want %q", tt.registry, tt.ref, tt.digest, got, err, tt.want)
		}
	}
}

func TestPushBundleImages(t *testing.T) {
	f := newBundleFixture(t, 1024)
	path, _, m := f.create(t, f.options())
	b, err := Extract(context.Background(), path, t.TempDir(), VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var uploads, manifestPuts atomic.Int32
	host := startRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case r.Method == http.MethodPost && strings.Contains(r.URL.Path, "/blobs/uploads/"):
				uploads.Add(1)
			case r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/"):
				manifestPuts.Add(1)
			}
			h.ServeHTTP(w, r)
		})
	})
	registry := host + "/mirror"
	got, err := Push(context.Background(), b, registry, f.ropts...)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(m.Images) {
		t.Errorf("pushed %d images, want %d", len(got), len(m.Images))
	}
	for _, img := range m.Images {
		dst := got[img.Ref]
		want, _ := RegistryRef(registry, img.Ref, img.Digest)
		if dst != want {
			t.Errorf("%s → %s, want %s", img.Ref, dst, want)
		}
		desc, err := remote.Get(mustRef(t, dst), f.ropts...)
		if err != nil {
			t.Errorf("%s: %v", dst, err)
			continue
		}
		if desc.Digest.String() != img.Digest {
			t.Errorf("%s: digest %s, want %s", dst, desc.Digest, img.Digest)
		}
		pulled, err := desc.Image()
		if err != nil {
			t.Fatal(err)
		}
		if err := validateImage(pulled); err != nil {
			t.Errorf("%s: %v", dst, err)
		}
		if tag := explicitTag(dst); tag != "" {
			byTag, err := remote.Head(mustRef(t, strings.Split(dst, "@")[0]), f.ropts...)
			if err != nil || byTag.Digest.String() != img.Digest {
				t.Errorf("%s by tag: %v %v", dst, byTag, err)
			}
		}
	}
	// A second push uploads no blob.
	before := uploads.Load()
	if _, err := Push(context.Background(), b, registry, f.ropts...); err != nil {
		t.Fatal(err)
	}
	if n := uploads.Load() - before; n != 0 {
		t.Errorf("second push uploaded %d blobs", n)
	}
	if _, err := Push(context.Background(), b, "not a registry", f.ropts...); err == nil {
		t.Error("want an error for a bad registry")
	}
}

func TestCreateBundleRefuses(t *testing.T) {
	f := newBundleFixture(t, 128)
	broken := writeMirror(t, map[string][]byte{})
	tests := []struct {
		name   string
		mutate func(*CreateOptions)
		want   string
	}{
		{"no catalog", func(o *CreateOptions) { o.Catalog = nil }, "no catalog"},
		{"no source", func(o *CreateOptions) { o.Source = nil }, "no asset source"},
		{"unknown release", func(o *CreateOptions) { o.Release = "9.9" }, "unknown release"},
		{"missing asset", func(o *CreateOptions) { o.Source = catalog.Mirror{Dir: broken} }, "no such file"},
		{"short key", func(o *CreateOptions) { o.SignKey = ed25519.PrivateKey{1} }, "signing key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := f.options()
			opts.WorkDir = t.TempDir()
			tt.mutate(&opts)
			_, err := Create(context.Background(), io.Discard, opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want %q", err, tt.want)
			}
			assertNothingIn(t, opts.WorkDir)
		})
	}
}

// BenchmarkVerifyBundle verifies a ~64 MiB bundle of random-layer images;
// its sha256 sub-benchmark hashes the same bytes, the in-process ceiling.
func BenchmarkVerifyBundle(b *testing.B) {
	f := newBundleFixture(b, 7<<20)
	var buf bytes.Buffer
	if _, err := Create(context.Background(), &buf, f.options()); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	b.Logf("bundle: %d MiB", len(data)>>20)
	b.Run("verify", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := Verify(context.Background(), bytes.NewReader(data), VerifyOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sha256", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			sha256.Sum256(data)
		}
	})
	// The same bundle as a file: tmbox's verify as the CLI runs it, and
	// coreutils' sha256sum on the same file (skipped when absent).
	path := filepath.Join(b.TempDir(), "bundle.tar")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Fatal(err)
	}
	b.Run("verify-file", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			_, err = Verify(context.Background(), bufio.NewReaderSize(f, 1<<20), VerifyOptions{})
			f.Close()
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sha256sum-file", func(b *testing.B) {
		bin, err := exec.LookPath("sha256sum")
		if err != nil {
			b.Skip("sha256sum not found")
		}
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if out, err := exec.Command(bin, path).CombinedOutput(); err != nil {
				b.Fatalf("%v: %s", err, out)
			}
		}
	})
}

func mustRef(t testing.TB, ref string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// componentVersion, assetFor and writeMirror are the catalog tests'
// helpers (internal to that package's tests).
func componentVersion(name, release string) string {
	switch name {
	case catalog.Istio:
		_, m, _ := strings.Cut(release, ".")
		var minor int
		fmt.Sscan(m, &minor)
		return fmt.Sprintf("1.%d.0", minor+7)
	case catalog.TriggerMesh:
		return "1.27.0"
	case catalog.TriggerMeshCore:
		return "1.5.3"
	}
	return release + ".0"
}

func assetFor(path string, data []byte) catalog.Asset {
	sum := sha256.Sum256(data)
	return catalog.Asset{Name: filepath.Base(path), Path: path, URL: "https://example.com/" + path, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
}

func writeMirror(t *testing.T, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for p, data := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
