//go:build unix

package bundle

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

// TestOpenFileRefusesIrregular: Inspect, InspectCatalog and Extract (and
// bundle verify through OpenFile) refuse a bundle path that is missing or
// not a regular file, naming it, at once: a named pipe is not waited on.
func TestOpenFileRefusesIrregular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.bundle")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	link := func(name, target string) string {
		p := filepath.Join(dir, name)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "missing.bundle"), "no such file"},
		{"directory", t.TempDir(), "is a directory"},
		{"named pipe", fifo, "is a named pipe"},
		{"link to a named pipe", link("fifo-link.bundle", fifo), "is a named pipe"},
		{"link to a device", link("dev.bundle", "/dev/zero"), "is a device"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			calls := map[string]func() error{
				"OpenFile":       func() error { _, err := OpenFile(tt.path); return err },
				"Inspect":        func() error { _, _, err := Inspect(tt.path); return err },
				"InspectCatalog": func() error { _, _, err := InspectCatalog(tt.path); return err },
				"Extract": func() error {
					_, err := Extract(ctx, tt.path, filepath.Join(t.TempDir(), "x"), VerifyOptions{})
					return err
				},
			}
			for what, call := range calls {
				done := make(chan error, 1)
				go func() { done <- call() }()
				select {
				case err := <-done:
					var fe *FileError
					if !errors.As(err, &fe) || fe.Path != tt.path || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.path) {
						t.Errorf("%s: got %v, want a *FileError naming %s and %q", what, err, tt.path, tt.want)
					}
				case <-ctx.Done():
					t.Fatalf("%s: still waiting after 5s", what)
				}
			}
		})
	}
}
