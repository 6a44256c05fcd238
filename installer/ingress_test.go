package installer

import (
	"testing"

	"github.com/tmbox/tmbox/installer/provider"
	"github.com/tmbox/tmbox/manifests"
)

// TestProbeAddress: the verify phase calls the gateway where the cluster
// tmbox laid down maps it: the state's address once recorded (a later
// run's kind config, built only to load images, has default ports), the
// kind config's on the run laying it down, nothing elsewhere.
func TestProbeAddress(t *testing.T) {
	kind := func(listen string, port int) *provider.Kind {
		return &provider.Kind{Config: manifests.KindConfig{Name: "dev", ListenAddress: listen, HTTPPort: port}}
	}
	tests := []struct {
		name  string
		kind  *provider.Kind
		state *State
		want  string
	}{
		{"laying the cluster down", kind("127.0.0.1", 8080), &State{}, "127.0.0.1:8080"},
		{"laying it down, any address", kind("0.0.0.0", 8080), nil, "127.0.0.1:8080"},
		{"no host port", kind("127.0.0.1", 0), &State{}, ""},
		{"a later run: the recorded address wins", kind("127.0.0.1", 80), &State{KindCluster: "dev", HostAddress: "127.0.0.1:36907"}, "127.0.0.1:36907"},
		{"a later run without the kind provider", nil, &State{KindCluster: "dev", HostAddress: "0.0.0.0:8080"}, "127.0.0.1:8080"},
		{"recorded without a host port", kind("127.0.0.1", 80), &State{KindCluster: "dev"}, ""},
		{"an existing cluster", nil, &State{Release: "1.23"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(&resolved{kind: tt.kind})
			e.state = tt.state
			if got := e.probeAddress(); got != tt.want {
				t.Errorf("probeAddress() = %q, want %q", got, tt.want)
			}
		})
	}
}
