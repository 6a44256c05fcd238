package bundle

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tmbox/tmbox/catalog"
)

// countingSource is a Source that counts opens and serves tampered bytes
// for one path.
type countingSource struct {
	src    catalog.Source
	opens  atomic.Int32
	tamper string
}

func (c *countingSource) Name() string { return "test source" }

func (c *countingSource) Open(ctx context.Context, a catalog.Asset) (io.ReadCloser, error) {
	c.opens.Add(1)
	rc, err := c.src.Open(ctx, a)
	if err != nil || a.Path != c.tamper {
		return rc, err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, err
	}
	data[len(data)/2] ^= 1
	return io.NopCloser(bytes.NewReader(data)), nil
}

// mirrorFiles lists every file under dir, slash-separated and sorted.
func mirrorFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func releaseAssetPaths(t *testing.T, cat *catalog.Catalog, releases ...string) []string {
	t.Helper()
	var out []string
	for _, r := range releases {
		rel, err := cat.Release(r)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range releaseAssets(rel) {
			out = append(out, a.Path)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestCreateMirror: every asset of the releases lands in the layout
// catalog.Mirror reads; a second run keeps them without fetching; a
// damaged file is replaced; a tampered download fails naming the file and
// leaves neither it nor a temporary file.
func TestCreateMirror(t *testing.T) {
	f := newMultiFixture(t)
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "mirror")
	src := &countingSource{src: catalog.Mirror{Dir: f.mirror}}
	opts := MirrorOptions{Catalog: f.cat, Releases: []string{"1.22", "1.21"}, Source: src, Dir: dir}
	want := releaseAssetPaths(t, f.cat, "1.21", "1.22")

	res, err := CreateMirror(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Releases, []string{"1.21", "1.22"}) || len(res.Written) != len(want) || len(res.Kept) != 0 {
		t.Errorf("first run: %+v", res)
	}
	if got := mirrorFiles(t, dir); !slices.Equal(got, want) {
		t.Errorf("mirror holds\n%v\nwant\n%v", got, want)
	}
	for _, r := range []string{"1.21", "1.22"} {
		rel, _ := f.cat.Release(r)
		for _, c := range rel.ComponentList() {
			if _, err := catalog.FetchComponent(ctx, catalog.Mirror{Dir: dir}, c); err != nil {
				t.Errorf("release %s: %v", r, err)
			}
		}
	}

	// Again: everything is kept, nothing fetched.
	before := src.opens.Load()
	res, err = CreateMirror(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if n := src.opens.Load() - before; n != 0 || len(res.Kept) != len(want) || len(res.Written) != 0 {
		t.Errorf("second run fetched %d assets: %+v", n, res)
	}

	// A damaged file is replaced.
	damaged := filepath.Join(dir, filepath.FromSlash(want[0]))
	if err := os.WriteFile(damaged, []byte("not it\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err = CreateMirror(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Replaced, want[:1]) || !slices.Equal(res.Written, want[:1]) {
		t.Errorf("damaged file: %+v", res)
	}
	if _, err := catalog.Fetch(ctx, catalog.Mirror{Dir: dir}, assetByPath(t, f.cat, want[0])); err != nil {
		t.Errorf("replaced file: %v", err)
	}

	// A tampered download: named, and nothing of it left.
	fresh := filepath.Join(t.TempDir(), "fresh")
	tampered := releaseAssetPaths(t, f.cat, "1.23")[0]
	src.tamper = tampered
	_, err = CreateMirror(ctx, MirrorOptions{Catalog: f.cat, Releases: []string{"1.23"}, Source: src, Dir: fresh})
	var dm *catalog.DigestMismatchError
	if !errors.As(err, &dm) || !strings.Contains(err.Error(), tampered) {
		t.Errorf("tampered download: %v", err)
	}
	for _, p := range mirrorFiles(t, fresh) {
		if p == tampered || strings.Contains(p, ".tmp-") {
			t.Errorf("left %s in the mirror", p)
		}
		if _, err := catalog.Fetch(ctx, catalog.Mirror{Dir: fresh}, assetByPath(t, f.cat, p)); err != nil {
			t.Errorf("left a bad file: %v", err)
		}
	}
}

func assetByPath(t *testing.T, cat *catalog.Catalog, p string) catalog.Asset {
	t.Helper()
	for _, c := range cat.Components {
		for _, a := range c.Assets {
			if a.Path == p {
				return a
			}
		}
	}
	t.Fatalf("no asset %s", p)
	return catalog.Asset{}
}

// TestCreateMirrorRefuses: what CreateMirror refuses before it writes.
func TestCreateMirrorRefuses(t *testing.T) {
	f := newMultiFixture(t)
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A directory where an asset belongs.
	blocked := t.TempDir()
	first := releaseAssetPaths(t, f.cat, "1.23")[0]
	if err := os.MkdirAll(filepath.Join(blocked, filepath.FromSlash(first)), 0o755); err != nil {
		t.Fatal(err)
	}
	good := MirrorOptions{Catalog: f.cat, Releases: []string{"1.23"}, Source: catalog.Mirror{Dir: f.mirror}, Dir: t.TempDir()}
	tests := []struct {
		name   string
		mutate func(*MirrorOptions)
		want   string
	}{
		{"no catalog", func(o *MirrorOptions) { o.Catalog = nil }, "no catalog"},
		{"no source", func(o *MirrorOptions) { o.Source = nil }, "no asset source"},
		{"no dir", func(o *MirrorOptions) { o.Dir = "" }, "no directory"},
		{"no release", func(o *MirrorOptions) { o.Releases = nil }, "no release named"},
		{"unknown release", func(o *MirrorOptions) { o.Releases = []string{"9.9"} }, "unknown release"},
		{"dir is a file", func(o *MirrorOptions) { o.Dir = file }, "exists and is not a directory"},
		{"a directory at an asset's path", func(o *MirrorOptions) { o.Dir = blocked }, "is a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := good
			tt.mutate(&opts)
			_, err := CreateMirror(context.Background(), opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want %q", err, tt.want)
			}
		})
	}
	if data, _ := os.ReadFile(file); string(data) != "x" {
		t.Error("the file in the way was changed")
	}
}
