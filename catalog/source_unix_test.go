//go:build unix

package catalog

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fetchWithin runs Fetch and fails the test when it does not return within
// two seconds (a blocked open or read).
func fetchWithin(t *testing.T, ctx context.Context, src Source, a Asset) ([]byte, error) {
	t.Helper()
	type result struct {
		data []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		data, err := Fetch(ctx, src, a)
		done <- result{data, err}
	}()
	select {
	case r := <-done:
		return r.data, r.err
	case <-time.After(2 * time.Second):
		t.Fatalf("Fetch(%s) did not return within 2s", a.Path)
		return nil, nil
	}
}

// TestMirrorRefusesIrregularFiles: only regular files (and symbolic links
// to them) are assets; a named pipe, a device, a directory or a link to
// one is refused at once with an error naming the file (hardening item 5).
func TestMirrorRefusesIrregularFiles(t *testing.T) {
	good := []byte("kind: ConfigMap\n")
	a := assetFor("knative/serving/1.0.0/serving.yaml", good)
	tests := []struct {
		name  string
		setup func(t *testing.T, full string)
		want  string // "" = success
	}{
		{"regular file", func(t *testing.T, full string) { writeFile(t, full, good) }, ""},
		{"symlink to a regular file", func(t *testing.T, full string) {
			writeFile(t, full+".real", good)
			symlink(t, full+".real", full)
		}, ""},
		{"named pipe", func(t *testing.T, full string) { mkfifo(t, full) }, "is a named pipe"},
		{"symlink to a named pipe", func(t *testing.T, full string) {
			mkfifo(t, full+".fifo")
			symlink(t, full+".fifo", full)
		}, "is a symbolic link to a named pipe"},
		{"directory", func(t *testing.T, full string) {
			if err := os.Mkdir(full, 0o755); err != nil {
				t.Fatal(err)
			}
		}, "is a directory"},
		{"symlink to a directory", func(t *testing.T, full string) { symlink(t, filepath.Dir(full), full) }, "is a symbolic link to a directory"},
		{"symlink to a device", func(t *testing.T, full string) { symlink(t, os.DevNull, full) }, "is a symbolic link to a character device"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			full := filepath.Join(dir, filepath.FromSlash(a.Path))
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				t.Fatal(err)
			}
			tt.setup(t, full)
			data, err := fetchWithin(t, context.Background(), Mirror{Dir: dir}, a)
			if tt.want == "" {
				if err != nil || string(data) != string(good) {
					t.Fatalf("got %q, %v", data, err)
				}
				return
			}
			if err == nil || data != nil {
				t.Fatalf("got %q, %v; want an error", data, err)
			}
			for _, s := range []string{tt.want, full, "only regular files"} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
		})
	}
}

// TestMirrorFifoWithCancel: a named pipe in the mirror does not hang a
// cancelled fetch either, and a cancelled context stops the read.
func TestMirrorFifoWithCancel(t *testing.T) {
	good := []byte("kind: ConfigMap\n")
	a := assetFor("x/1.0.0/x.yaml", good)
	dir := writeMirror(t, map[string][]byte{a.Path: good})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := fetchWithin(t, ctx, Mirror{Dir: dir}, a); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled fetch: got %v, want context.Canceled", err)
	}
	// Reads of an opened asset check the context.
	ctx, cancel = context.WithCancel(context.Background())
	rc, err := Mirror{Dir: dir}.Open(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	cancel()
	if _, err := rc.Read(make([]byte, 4)); !errors.Is(err, context.Canceled) {
		t.Errorf("read after cancel: got %v, want context.Canceled", err)
	}
	// The upstream cache refuses a named pipe too (and downloads instead).
	cache := t.TempDir()
	mkfifo(t, filepath.Join(cache, a.SHA256))
	client, hits := fakeUpstream(t, map[string][]byte{a.Path: good})
	a.URL = "http://downloads.example/" + a.Path
	data, err := fetchWithin(t, context.Background(), Upstream{CacheDir: cache, Client: client}, a)
	if err != nil || string(data) != string(good) || hits.Load() != 1 {
		t.Errorf("fifo in the cache: got %q, %v, %d downloads", data, err, hits.Load())
	}
}

func writeFile(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func mkfifo(t *testing.T, p string) {
	t.Helper()
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	// Unblock an open that waits for a writer, so a hung goroutine of a
	// failing test ends.
	t.Cleanup(func() {
		if f, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
}
