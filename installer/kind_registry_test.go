package installer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tmbox/tmbox/manifests"
)

// TestKindRegistryMirror: install --create-cluster --registry makes the
// kind cluster's containerd pull from the registry's host, with the scheme
// tmbox pushes there with; a loopback registry is refused at Validate,
// naming --registry, since the nodes cannot reach the host's loopback.
func TestKindRegistryMirror(t *testing.T) {
	dir := t.TempDir()
	bundleFile := filepath.Join(dir, "x.bundle")
	if err := os.WriteFile(bundleFile, []byte("not read by Validate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		registry string
		create   bool
		endpoint string // "" : no mirror
		wantErr  string // on setting "registry"
	}{
		{name: "bridge gateway: http", registry: "172.17.0.1:5000/mirror", create: true, endpoint: "http://172.17.0.1:5000"},
		{name: "RFC 1918: http", registry: "10.1.2.3/m", create: true, endpoint: "http://10.1.2.3"},
		{name: "DNS name: https", registry: "registry.example.com:5443/tmbox", create: true, endpoint: "https://registry.example.com:5443"},
		{name: "no prefix", registry: "registry.example.com", create: true, endpoint: "https://registry.example.com"},
		{name: "existing cluster: no kind mirror", registry: "172.17.0.1:5000/mirror"},
		{name: "existing cluster: loopback is fine", registry: "localhost:5000/mirror"},
		{name: "localhost", registry: "localhost:5000/mirror", create: true, wantErr: "localhost:5000 is this host's loopback"},
		{name: "127.x", registry: "127.0.0.2:5000", create: true, wantErr: "127.0.0.2:5000 is this host's loopback"},
		{name: "::1", registry: "[::1]:5000/m", create: true, wantErr: "[::1]:5000 is this host's loopback"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{CreateCluster: tc.create, Registry: tc.registry, Bundle: bundleFile, StateDir: dir}
			err := o.Validate()
			var regErr string
			for _, se := range SettingErrors(err) {
				if se.Setting == "registry" {
					regErr = se.Error()
				} else {
					t.Errorf("unexpected error on %s: %v", se.Setting, se)
				}
			}
			if tc.wantErr != "" {
				if !strings.Contains(regErr, tc.wantErr) || !strings.Contains(regErr, "--registry") || !strings.Contains(regErr, "--create-cluster") {
					t.Fatalf("Validate: %v, want a --registry error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			m := o.KindConfig().RegistryMirror
			if tc.endpoint == "" {
				if m != nil {
					t.Fatalf("mirror %+v without --create-cluster", m)
				}
				return
			}
			host, _, _ := strings.Cut(tc.registry, "/")
			if m == nil || m.Endpoint != tc.endpoint || len(m.Registries) != 1 || m.Registries[0] != host {
				t.Fatalf("mirror %+v, want endpoint %s for registry %s", m, tc.endpoint, host)
			}
			if want := filepath.Join(dir, "tmbox", "certs.d"); m.HostsDir != want {
				t.Errorf("hosts dir %s, want %s", m.HostsDir, want)
			}
			if _, err := manifests.RenderKindConfig(o.KindConfig()); err != nil {
				t.Errorf("render: %v", err)
			}
		})
	}
}

// TestWithRegistryCA: --registry-ca reaches an https mirror, not an http
// one (containerd would not use it), and the options' mirror is not
// changed.
func TestWithRegistryCA(t *testing.T) {
	ca := []byte("-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n")
	for _, tc := range []struct {
		registry string
		wantCA   bool
	}{{"registry.example.com/m", true}, {"172.17.0.1:5000/m", false}} {
		o := Options{CreateCluster: true, Registry: tc.registry, StateDir: t.TempDir()}
		kc := o.KindConfig()
		got := withRegistryCA(kc, ca)
		if has := got.RegistryMirror != nil && len(got.RegistryMirror.CA) > 0; has != tc.wantCA {
			t.Errorf("%s: CA set %v, want %v", tc.registry, has, tc.wantCA)
		}
		if len(kc.RegistryMirror.CA) != 0 {
			t.Errorf("%s: the input mirror was changed", tc.registry)
		}
		if tc.wantCA {
			files, err := manifests.KindRegistryHosts(*got.RegistryMirror)
			if err != nil {
				t.Fatal(err)
			}
			host, _, _ := strings.Cut(tc.registry, "/")
			if string(files["certs.d/"+host+"/ca.crt"]) != string(ca) || !strings.Contains(string(files["certs.d/"+host+"/hosts.toml"]), `ca = "/etc/containerd/certs.d/`+host+`/ca.crt"`) {
				t.Errorf("%s: hosts files %v", tc.registry, files)
			}
		}
	}
}
