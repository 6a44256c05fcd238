//go:build unix

package addons

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLoadFIFO checks a named pipe, as a values file or as a chart, is
// refused at once, not read (reading one would wait for a writer
// forever).
func TestLoadFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no named pipes here: %v", err)
	}
	tests := []struct {
		name  string
		addon Addon
		want  string
	}{
		{"values file", Addon{Name: "demo", Chart: demoDir, Namespace: "tenant", ValuesFiles: []string{fifo}},
			`addons[0].valuesFiles[0]: add-on "demo": ` + fifo + ` is a named pipe: tmbox reads only regular files`},
		{"chart", Addon{Name: "demo", Chart: fifo, Namespace: "tenant"},
			`addons[0].chart: add-on "demo": chart: ` + fifo + ` is a named pipe: tmbox reads only regular files`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() { _, err := Load(context.Background(), []Addon{tt.addon}, LoadOptions{}); done <- err }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("got %v, want %q", err, tt.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Load blocked on a named pipe")
			}
		})
	}
}
