package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

func assetFor(path string, data []byte) Asset {
	sum := sha256.Sum256(data)
	return Asset{Name: filepath.Base(path), Path: path, URL: "https://example.com/" + path, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
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

func TestMirror(t *testing.T) {
	good := []byte("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: knative-serving\n")
	a := assetFor("knative/serving/1.21.3/1-serving-crds.yaml", good)
	flipped := append([]byte(nil), good...)
	flipped[10] ^= 0x01
	tests := []struct {
		name    string
		content []byte
		want    string // error substring; "" means success
	}{
		{"intact", good, ""},
		{"one flipped byte", flipped, "sha256 "},
		{"truncated", good[:20], "size 20, want"},
		{"longer", append(append([]byte(nil), good...), '\n'), "want " + a.SHA256},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeMirror(t, map[string][]byte{a.Path: tt.content})
			data, err := Fetch(context.Background(), Mirror{Dir: dir}, a)
			if tt.want == "" {
				if err != nil || string(data) != string(good) {
					t.Fatalf("got %q, %v", data, err)
				}
				return
			}
			if data != nil {
				t.Error("returned bytes with an error")
			}
			var dm *DigestMismatchError
			if !errors.As(err, &dm) {
				t.Fatalf("want a DigestMismatchError, got %v", err)
			}
			msg := err.Error()
			for _, s := range []string{tt.want, a.SHA256, dm.Actual, a.Path, dir} {
				if !strings.Contains(msg, s) {
					t.Errorf("message %q lacks %q", msg, s)
				}
			}
		})
	}
	if _, err := Fetch(context.Background(), Mirror{Dir: t.TempDir()}, a); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: want not-exist, got %v", err)
	}
}

// TestMirrorFlippedByteInRealUpstream copies the real Serving files into a
// mirror, flips one byte of one, and checks the component is refused whole.
func TestMirrorFlippedByteInRealUpstream(t *testing.T) {
	up := upstreamDir(t)
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	r, _ := c.Release("1.21")
	comp, _ := r.Component(KnativeServing)
	files := map[string][]byte{}
	for _, a := range comp.Assets {
		data, err := os.ReadFile(filepath.Join(up, a.Path))
		if err != nil {
			t.Fatal(err)
		}
		files[a.Path] = data
	}
	if _, err := FetchComponent(context.Background(), Mirror{Dir: writeMirror(t, files)}, comp); err != nil {
		t.Fatalf("intact mirror: %v", err)
	}
	victim := comp.Assets[2]
	files[victim.Path][len(files[victim.Path])/2] ^= 0x20
	got, err := FetchComponent(context.Background(), Mirror{Dir: writeMirror(t, files)}, comp)
	if got != nil || err == nil {
		t.Fatal("a mirror with a flipped byte was accepted")
	}
	for _, s := range []string{victim.Path, victim.SHA256, "knative-serving 1.21.3"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q lacks %q", err, s)
		}
	}
}

// fakeUpstream serves files over HTTP on loopback; the client's transport
// sends every request there, whatever the URL's host.
func fakeUpstream(t *testing.T, files map[string][]byte) (*http.Client, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		data, ok := files[strings.TrimPrefix(r.URL.Path, "/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(data)
	}))
	t.Cleanup(srv.Close)
	target, _ := url.Parse(srv.URL)
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, target.Host)
		},
	}}, &hits
}

func TestUpstream(t *testing.T) {
	good := []byte("kind: ConfigMap\n")
	a := assetFor("net-istio.yaml", good)
	a.URL = "http://downloads.example/net-istio.yaml"
	cache := t.TempDir()

	client, hits := fakeUpstream(t, map[string][]byte{"net-istio.yaml": good})
	src := Upstream{CacheDir: cache, Client: client}
	for i := 0; i < 2; i++ {
		data, err := Fetch(context.Background(), src, a)
		if err != nil || string(data) != string(good) {
			t.Fatalf("fetch %d: %q, %v", i, data, err)
		}
	}
	if hits.Load() != 1 {
		t.Errorf("downloaded %d times, want once (then cached)", hits.Load())
	}

	// Tampered upstream: refused, and nothing is cached.
	bad := []byte("kind: Secret\n!!\n")
	b := assetFor("other.yaml", []byte("kind: Other\n"))
	b.URL = "http://downloads.example/other.yaml"
	client, _ = fakeUpstream(t, map[string][]byte{"other.yaml": bad})
	_, err := Fetch(context.Background(), Upstream{CacheDir: cache, Client: client}, b)
	var dm *DigestMismatchError
	if !errors.As(err, &dm) || !strings.Contains(err.Error(), b.URL) {
		t.Fatalf("want a digest mismatch naming the URL, got %v", err)
	}
	if _, err := os.Stat(filepath.Join(cache, b.SHA256)); err == nil {
		t.Error("a file that failed verification was cached")
	}

	// A cache entry modified on disk is caught too.
	if err := os.WriteFile(filepath.Join(cache, a.SHA256), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Fetch(context.Background(), src, a); !errors.As(err, &dm) {
		t.Errorf("a tampered cache entry was accepted: %v", err)
	}

	// HTTP errors name the URL.
	c := assetFor("missing.yaml", []byte("kind: Missing\n"))
	c.URL = "http://downloads.example/missing.yaml"
	if _, err := Fetch(context.Background(), src, c); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("want a 404 error, got %v", err)
	}
}
