package main

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io/fs"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tmbox/tmbox/catalog"
)

// upstreamServer serves dir over HTTPS on 127.0.0.1 as upstream's
// download URLs would, counting requests; a request for the path in
// tamper gets the file with one byte flipped.
type upstreamServer struct {
	*httptest.Server
	requests atomic.Int32
	tamper   atomic.Value // string: an asset path
}

func startUpstream(t *testing.T, dir string) *upstreamServer {
	t.Helper()
	u := &upstreamServer{}
	u.tamper.Store("")
	files := http.FileServer(http.Dir(dir))
	u.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.requests.Add(1)
		if p := u.tamper.Load().(string); p != "" && r.URL.Path == "/"+p {
			data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			data[len(data)/2] ^= 1
			w.Write(data)
			return
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

// caFile writes the server's certificate as a PEM file.
func (u *upstreamServer) caFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: u.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// assetURL is an asset's path and the url line after it in catalog.yaml.
var assetURL = regexp.MustCompile(`(?m)^(\s*)path: (\S+)\n(\s*)url: \S+$`)

// localCatalog is the embedded catalog with every asset's URL moved to
// base/<asset path>; sizes and digests are unchanged.
func localCatalog(t *testing.T, base string) string {
	t.Helper()
	data := assetURL.ReplaceAll(catalog.EmbeddedCatalog(), []byte("${1}path: ${2}\n${3}url: "+base+"/${2}"))
	cat, err := catalog.Parse(data, "local catalog")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cat.Components {
		for _, a := range c.Assets {
			if !strings.HasPrefix(a.URL, base+"/") {
				t.Fatalf("%s: url %s not rewritten", a.Path, a.URL)
			}
		}
	}
	p := filepath.Join(t.TempDir(), "catalog.yaml")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// dirFiles lists every file under dir, slash-separated, sorted.
func dirFiles(t *testing.T, dir string) []string {
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

// releaseAssetSet maps every asset path of a release to its asset.
func releaseAssetSet(t *testing.T, cat *catalog.Catalog, release string) map[string]catalog.Asset {
	t.Helper()
	rel, err := cat.Release(release)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]catalog.Asset{}
	for _, c := range rel.ComponentList() {
		for _, a := range c.Assets {
			out[a.Path] = a
		}
	}
	return out
}

// TestMirrorCreate: mirror create of 1.21 from a loopback HTTPS server
// serving ../shared/upstream writes a directory that --mirror reads (every
// component of 1.21 fetches and verifies from it, and render --mirror
// renders from it); a second run keeps every file without a request; a
// file tampered with on the server fails the run naming it, leaving
// neither it nor a temporary file.
func TestMirrorCreate(t *testing.T) {
	up := startUpstream(t, upstreamDir(t))
	cat := localCatalog(t, up.URL)
	ca := up.caFile(t)
	embedded, err := catalog.Load("")
	if err != nil {
		t.Fatal(err)
	}
	assets := releaseAssetSet(t, embedded, "1.21")
	dir := filepath.Join(t.TempDir(), "mirror")

	start := time.Now()
	out, errOut, err := run(t, "--catalog", cat, "mirror", "create", dir, "--release", "1.21", "--cache-dir", t.TempDir(), "--ca-file", ca)
	if err != nil {
		t.Fatalf("mirror create: %v\n%s", err, errOut)
	}
	t.Logf("mirror create of 1.21 (%d files) took %s: %s", len(assets), time.Since(start).Round(time.Millisecond), strings.TrimSpace(out))
	if got, want := dirFiles(t, dir), slices.Sorted(maps.Keys(assets)); !slices.Equal(got, want) {
		t.Errorf("the mirror holds %d files, want the %d assets of 1.21", len(got), len(want))
	}
	if n := int(up.requests.Load()); n != len(assets) {
		t.Errorf("%d requests for %d assets", n, len(assets))
	}
	// What install --mirror reads: every component of 1.21, with the
	// embedded catalog.
	rel, _ := embedded.Release("1.21")
	for _, c := range rel.ComponentList() {
		if _, err := catalog.FetchComponent(context.Background(), catalog.Mirror{Dir: dir}, c); err != nil {
			t.Errorf("--mirror %s: %v", dir, err)
		}
	}
	rendered := t.TempDir()
	if _, errOut, err := run(t, "render", "--mirror", dir, "--release", "1.21", "--output-dir", rendered); err != nil {
		t.Errorf("render --mirror: %v\n%s", err, errOut)
	} else if files := dirFiles(t, rendered); len(files) < len(catalog.ComponentNames()) {
		t.Errorf("render --mirror wrote %v", files)
	}

	// Again, with an empty download cache: every file is kept, no request.
	before := up.requests.Load()
	out, errOut, err = run(t, "--catalog", cat, "mirror", "create", dir, "--release", "1.21", "--cache-dir", t.TempDir(), "--ca-file", ca, "-o", "json")
	if err != nil {
		t.Fatalf("second mirror create: %v\n%s", err, errOut)
	}
	var res struct {
		Written, Kept []string
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	if n := up.requests.Load() - before; n != 0 || len(res.Kept) != len(assets) || len(res.Written) != 0 {
		t.Errorf("second run: %d requests, %d kept, %d written", n, len(res.Kept), len(res.Written))
	}

	// A tampered file on the server.
	tampered := "knative/serving/1.21.3/2-serving-core.yaml"
	if _, ok := assets[tampered]; !ok {
		t.Fatalf("%s is not an asset of 1.21", tampered)
	}
	up.tamper.Store(tampered)
	fresh := filepath.Join(t.TempDir(), "fresh")
	_, _, err = run(t, "--catalog", cat, "mirror", "create", fresh, "--release", "1.21", "--cache-dir", t.TempDir(), "--ca-file", ca)
	var dm *catalog.DigestMismatchError
	if !errors.As(err, &dm) || !strings.Contains(err.Error(), tampered) {
		t.Fatalf("tampered file: %v, want a digest mismatch naming %s", err, tampered)
	}
	if code := exitCode(context.Background(), err); code != exitError {
		t.Errorf("exit code %d, want %d", code, exitError)
	}
	t.Logf("refused: %v", err)
	for _, p := range dirFiles(t, fresh) {
		if p == tampered || strings.Contains(p, ".tmp-") {
			t.Errorf("left %s in the mirror", p)
			continue
		}
		if _, err := catalog.Fetch(context.Background(), catalog.Mirror{Dir: fresh}, assets[p]); err != nil {
			t.Errorf("left a bad file: %v", err)
		}
	}
}

// TestMirrorCreateRefuses: usage errors (exit 2), before any download.
func TestMirrorCreateRefuses(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("keep\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"DIR is a file", []string{"mirror", "create", file, "--release", "1.21"}, "exists and is not a directory"},
		{"no DIR", []string{"mirror", "create", "--release", "1.21"}, "accepts 1 arg"},
		{"unknown release", []string{"mirror", "create", "DIR", "--release", "1.21,9.9"}, `unknown release "9.9"`},
		{"empty list", []string{"mirror", "create", "DIR", "--release", ""}, "an empty list"},
		{"bad CA file", []string{"mirror", "create", "DIR", "--release", "1.21", "--ca-file", file}, "no PEM certificate"},
		{"bad output", []string{"mirror", "create", "DIR", "-o", "xml"}, "unknown output format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "mirror")
			args := slices.Clone(tt.args)
			for i, a := range args {
				if a == "DIR" {
					args[i] = dir
				}
			}
			_, errOut, err := run(t, append(args, "--cache-dir", t.TempDir())...)
			if code := exitCode(context.Background(), err); code != exitUsage || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("exit code %d, error %v; want %d and %q", code, err, exitUsage, tt.want)
			}
			if strings.Contains(errOut, "[1/") {
				t.Errorf("downloads before the refusal: %s", errOut)
			}
			if _, err := os.Stat(dir); err == nil {
				t.Errorf("%s was created", dir)
			}
		})
	}
	if data, _ := os.ReadFile(file); string(data) != "keep\n" {
		t.Error("the file in the way was changed")
	}
}
