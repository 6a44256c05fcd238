//go:build unix

package settings

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLoadFIFO checks a named pipe is refused at once, not read (reading
// one would wait for a writer forever).
func TestLoadFIFO(t *testing.T) {
	f := validFiles(t)
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no named pipes here: %v", err)
	}
	tests := []struct {
		name string
		s    Settings
		path string
	}{
		{"certificate", Settings{TLS: &TLS{CertFile: fifo, KeyFile: f.key}}, "platform.tls.certFile"},
		{"pull secret", Settings{Registry: &Registry{PullSecret: fifo}}, "platform.registry.pullSecret"},
		{"CA", Settings{Registry: &Registry{CAFile: fifo}}, "platform.registry.caFile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() { _, err := Load(tt.s); done <- err }()
			select {
			case err := <-done:
				want := tt.path + ": " + fifo + " is a named pipe: tmbox reads only regular files"
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("got %v, want %q", err, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Load blocked on a named pipe")
			}
		})
	}
}
