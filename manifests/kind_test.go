package manifests

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	yamlv3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func airgapMirror() *RegistryMirror {
	return &RegistryMirror{
		Endpoint:   "http://tmbox-registry:5000",
		Registries: []string{"docker.io", "gcr.io", "quay.io", "registry.k8s.io", "ghcr.io"},
		HostsDir:   "/home/user/.tmbox/tmbox/certs.d",
	}
}

func TestRenderKindConfigGolden(t *testing.T) {
	for _, tc := range []struct {
		golden string
		config KindConfig
		check  func(*testing.T, *v1alpha4.Cluster)
	}{{
		golden: "kind-default.golden.yaml",
		config: KindConfig{Name: "tmbox"},
		check: func(t *testing.T, c *v1alpha4.Cluster) {
			if len(c.Nodes) != 1 || c.Nodes[0].Role != v1alpha4.ControlPlaneRole {
				t.Fatalf("nodes = %+v, want one control plane", c.Nodes)
			}
			want := []v1alpha4.PortMapping{
				{ContainerPort: IngressHTTPNodePort, HostPort: 80, ListenAddress: "127.0.0.1", Protocol: v1alpha4.PortMappingProtocolTCP},
				{ContainerPort: IngressHTTPSNodePort, HostPort: 443, ListenAddress: "127.0.0.1", Protocol: v1alpha4.PortMappingProtocolTCP},
			}
			if got := c.Nodes[0].ExtraPortMappings; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
				t.Errorf("port mappings = %+v, want %+v", got, want)
			}
			if c.Networking.APIServerAddress != "127.0.0.1" || c.Networking.APIServerPort != 0 {
				t.Errorf("networking = %+v", c.Networking)
			}
			if len(c.Nodes[0].KubeadmConfigPatches) != 1 || !strings.Contains(c.Nodes[0].KubeadmConfigPatches[0], `node-labels: "ingress-ready=true"`) {
				t.Errorf("control plane patches = %q, want the ingress-ready label", c.Nodes[0].KubeadmConfigPatches)
			}
			if len(c.ContainerdConfigPatches) != 0 || len(c.Nodes[0].ExtraMounts) != 0 {
				t.Errorf("containerd patches or mounts without a mirror: %+v", c)
			}
		},
	}, {
		golden: "kind-workers.golden.yaml",
		config: KindConfig{Name: "dev", Workers: 2, ListenAddress: "0.0.0.0", HTTPPort: 8080, HTTPSPort: KindNoPort, APIServerPort: 6443},
		check: func(t *testing.T, c *v1alpha4.Cluster) {
			if len(c.Nodes) != 3 || c.Nodes[1].Role != v1alpha4.WorkerRole || c.Nodes[2].Role != v1alpha4.WorkerRole {
				t.Fatalf("nodes = %+v, want control plane and 2 workers", c.Nodes)
			}
			got := c.Nodes[0].ExtraPortMappings
			if len(got) != 1 || got[0].HostPort != 8080 || got[0].ContainerPort != IngressHTTPNodePort || got[0].ListenAddress != "0.0.0.0" {
				t.Errorf("port mappings = %+v, want only HTTP on 0.0.0.0:8080", got)
			}
			if c.Networking.APIServerAddress != "0.0.0.0" || c.Networking.APIServerPort != 6443 {
				t.Errorf("networking = %+v", c.Networking)
			}
		},
	}, {
		golden: "kind-airgap.golden.yaml",
		config: KindConfig{Name: "airgap", Workers: 1, RegistryMirror: airgapMirror()},
		check: func(t *testing.T, c *v1alpha4.Cluster) {
			if len(c.ContainerdConfigPatches) != 1 || !strings.Contains(c.ContainerdConfigPatches[0], `config_path = "/etc/containerd/certs.d"`) ||
				!strings.Contains(c.ContainerdConfigPatches[0], `[plugins."io.containerd.grpc.v1.cri".registry]`) {
				t.Errorf("containerd patches = %q", c.ContainerdConfigPatches)
			}
			if len(c.Nodes) != 2 {
				t.Fatalf("nodes = %d, want 2", len(c.Nodes))
			}
			want := v1alpha4.Mount{HostPath: "/home/user/.tmbox/tmbox/certs.d", ContainerPath: "/etc/containerd/certs.d", Readonly: true}
			for i, n := range c.Nodes {
				if len(n.ExtraMounts) != 1 || n.ExtraMounts[0] != want {
					t.Errorf("node %d mounts = %+v, want %+v", i, n.ExtraMounts, want)
				}
			}
		},
	}} {
		t.Run(tc.golden, func(t *testing.T) {
			got, err := RenderKindConfig(tc.config)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tc.golden)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./manifests -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("RenderKindConfig differs from %s (run go test ./manifests -update if intended):\n--- got\n%s\n--- want\n%s", path, got, want)
			}

			c := decodeStrict(t, got)
			if c.Kind != "Cluster" || c.APIVersion != "kind.x-k8s.io/v1alpha4" || c.Name != tc.config.Name {
				t.Errorf("type/name = %+v %q", c.TypeMeta, c.Name)
			}
			tc.check(t, c)
		})
	}
}

// decodeStrict decodes raw into a v1alpha4.Cluster both ways kind could:
// through the JSON tags (sigs.k8s.io/yaml) and as kind's own loader does
// (yaml.v3 with known fields only); unknown fields fail either.
func decodeStrict(t *testing.T, raw []byte) *v1alpha4.Cluster {
	t.Helper()
	var c v1alpha4.Cluster
	if err := yaml.UnmarshalStrict(raw, &c); err != nil {
		t.Fatalf("strict decode into v1alpha4.Cluster: %v\n%s", err, raw)
	}
	var c3 v1alpha4.Cluster
	d := yamlv3.NewDecoder(bytes.NewReader(raw))
	d.KnownFields(true)
	if err := d.Decode(&c3); err != nil {
		t.Fatalf("kind-style decode into v1alpha4.Cluster: %v\n%s", err, raw)
	}
	return &c
}

func TestRenderKindConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config KindConfig
		want   []string
	}{
		{"empty name", KindConfig{}, []string{"cluster name is empty"}},
		{"upper case name", KindConfig{Name: "Tmbox"}, []string{`"Tmbox" is not a lower-case DNS label`}},
		{"dotted name", KindConfig{Name: "a.b"}, []string{"not a lower-case DNS label"}},
		{"leading dash", KindConfig{Name: "-tmbox"}, []string{"not a lower-case DNS label"}},
		{"long name", KindConfig{Name: strings.Repeat("a", KindMaxNameLength+1)}, []string{"longer than 49 characters"}},
		{"negative workers", KindConfig{Name: "t", Workers: -1}, []string{"workers -1 out of range 0..20"}},
		{"too many workers", KindConfig{Name: "t", Workers: 21}, []string{"workers 21 out of range 0..20"}},
		{"bad listen address", KindConfig{Name: "t", ListenAddress: "localhost"}, []string{`listen address "localhost" is not an IP address`}},
		{"http port high", KindConfig{Name: "t", HTTPPort: 70000}, []string{"HTTP port 70000 out of range 1..65535"}},
		{"https port negative", KindConfig{Name: "t", HTTPSPort: -2}, []string{"HTTPS port -2 out of range"}},
		{"api port", KindConfig{Name: "t", APIServerPort: -1}, []string{"API server port -1 out of range"}},
		{"port clash", KindConfig{Name: "t", HTTPPort: 8443, HTTPSPort: 8443}, []string{"HTTP port and HTTPS port are both 8443"}},
		{"api port clash", KindConfig{Name: "t", APIServerPort: 443}, []string{"HTTPS port and API server port are both 443"}},
		{"several at once", KindConfig{Name: "T", Workers: 99}, []string{"not a lower-case DNS label", "workers 99"}},
		{"mirror without hosts dir", KindConfig{Name: "t", RegistryMirror: &RegistryMirror{Endpoint: "http://r:5000", Registries: []string{"docker.io"}}}, []string{"hosts directory is empty"}},
		{"mirror relative hosts dir", KindConfig{Name: "t", RegistryMirror: &RegistryMirror{Endpoint: "http://r:5000", Registries: []string{"docker.io"}, HostsDir: "certs.d"}}, []string{`hosts directory "certs.d" is not an absolute path`}},
		{"mirror bad endpoint", KindConfig{Name: "t", RegistryMirror: &RegistryMirror{Endpoint: "tmbox-registry:5000", Registries: []string{"docker.io"}, HostsDir: "/c"}}, []string{`endpoint "tmbox-registry:5000" is not an http(s)://host[:port] URL`}},
		{"mirror no registries", KindConfig{Name: "t", RegistryMirror: &RegistryMirror{Endpoint: "http://r:5000", HostsDir: "/c"}}, []string{"no registries to mirror"}},
		{"mirror bad registry", KindConfig{Name: "t", RegistryMirror: &RegistryMirror{Endpoint: "http://r:5000", Registries: []string{"docker.io/library"}, HostsDir: "/c"}}, []string{`registry "docker.io/library" is not a lower-case host[:port]`}},
		{"mirror duplicate registry", KindConfig{Name: "t", RegistryMirror: &RegistryMirror{Endpoint: "http://r:5000", Registries: []string{"quay.io", "quay.io"}, HostsDir: "/c"}}, []string{`registry "quay.io" listed twice`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := RenderKindConfig(tc.config)
			if err == nil {
				t.Fatalf("RenderKindConfig succeeded:\n%s", out)
			}
			if !strings.HasPrefix(err.Error(), "invalid kind config: ") {
				t.Errorf("error %q lacks the context prefix", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestRenderKindConfigAccepts(t *testing.T) {
	for _, c := range []KindConfig{
		{Name: "a"},
		{Name: strings.Repeat("a", KindMaxNameLength)},
		{Name: "t", Workers: KindMaxWorkers},
		{Name: "t", ListenAddress: "::1", HTTPPort: 1, HTTPSPort: 65535, APIServerPort: 65534},
		{Name: "t", HTTPPort: KindNoPort, HTTPSPort: KindNoPort},
		{Name: "t", RegistryMirror: &RegistryMirror{Endpoint: "https://mirror.example:5443/", Registries: []string{"localhost:5000"}, HostsDir: `/tmp/a "quoted" dir`}},
	} {
		raw, err := RenderKindConfig(c)
		if err != nil {
			t.Errorf("RenderKindConfig(%+v): %v", c, err)
			continue
		}
		got := decodeStrict(t, raw)
		if len(got.Nodes) != c.Workers+1 {
			t.Errorf("%+v: %d nodes, want %d", c, len(got.Nodes), c.Workers+1)
		}
		if c.RegistryMirror != nil && got.Nodes[0].ExtraMounts[0].HostPath != c.RegistryMirror.HostsDir {
			t.Errorf("host path = %q, want %q", got.Nodes[0].ExtraMounts[0].HostPath, c.RegistryMirror.HostsDir)
		}
	}
}

func TestKindRegistryHosts(t *testing.T) {
	m := airgapMirror()
	m.Registries = append(m.Registries, "localhost:5001")
	files, err := KindRegistryHosts(*m)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(m.Registries) {
		t.Fatalf("%d files, want %d: %v", len(files), len(m.Registries), files)
	}
	want := map[string]string{
		"certs.d/docker.io/hosts.toml": `# Generated by tmbox: pull docker.io through the local mirror.
server = "https://registry-1.docker.io"

[host."http://tmbox-registry:5000"]
  capabilities = ["pull", "resolve"]
`,
		"certs.d/registry.k8s.io/hosts.toml": `# Generated by tmbox: pull registry.k8s.io through the local mirror.
server = "https://registry.k8s.io"

[host."http://tmbox-registry:5000"]
  capabilities = ["pull", "resolve"]
`,
		"certs.d/localhost:5001/hosts.toml": `# Generated by tmbox: pull localhost:5001 through the local mirror.
server = "https://localhost:5001"

[host."http://tmbox-registry:5000"]
  capabilities = ["pull", "resolve"]
`,
	}
	for path, content := range want {
		if got := string(files[path]); got != content {
			t.Errorf("%s =\n%s\nwant\n%s", path, got, content)
		}
	}
	for _, r := range m.Registries {
		if _, ok := files["certs.d/"+r+"/hosts.toml"]; !ok {
			t.Errorf("no hosts.toml for %s", r)
		}
	}

	// HostsDir is not needed to generate the files.
	if _, err := KindRegistryHosts(RegistryMirror{Endpoint: "http://r:5000", Registries: []string{"quay.io"}}); err != nil {
		t.Errorf("without HostsDir: %v", err)
	}
	if _, err := KindRegistryHosts(RegistryMirror{Endpoint: "ftp://r", Registries: []string{"Quay.io"}}); err == nil ||
		!strings.Contains(err.Error(), "invalid registry mirror") || !strings.Contains(err.Error(), `"ftp://r"`) || !strings.Contains(err.Error(), `"Quay.io"`) {
		t.Errorf("bad mirror: err = %v", err)
	}
}

// TestKindRegistryHostsCA: with a CA, every registry's directory gets
// ca.crt and its hosts.toml names it at its path inside the node; a CA
// is refused for an http endpoint and when it holds no certificate.
func TestKindRegistryHostsCA(t *testing.T) {
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not parsed here")})
	key := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("k")})
	for _, tc := range []struct {
		name    string
		mirror  RegistryMirror
		files   map[string]string // path → content ("" : CA bytes)
		wantErr string
	}{{
		name:   "https with a CA",
		mirror: RegistryMirror{Endpoint: "https://reg.example:5443", Registries: []string{"reg.example:5443"}, CA: ca},
		files: map[string]string{
			"certs.d/reg.example:5443/hosts.toml": `# Generated by tmbox: pull reg.example:5443 through the local mirror.
server = "https://reg.example:5443"

[host."https://reg.example:5443"]
  capabilities = ["pull", "resolve"]
  ca = "/etc/containerd/certs.d/reg.example:5443/ca.crt"
`,
			"certs.d/reg.example:5443/ca.crt": "",
		},
	}, {
		name:   "https without a CA",
		mirror: RegistryMirror{Endpoint: "https://reg.example", Registries: []string{"reg.example"}},
		files: map[string]string{
			"certs.d/reg.example/hosts.toml": `# Generated by tmbox: pull reg.example through the local mirror.
server = "https://reg.example"

[host."https://reg.example"]
  capabilities = ["pull", "resolve"]
`,
		},
	}, {
		name:    "a CA for an http endpoint",
		mirror:  RegistryMirror{Endpoint: "http://10.0.0.5:5000", Registries: []string{"10.0.0.5:5000"}, CA: ca},
		wantErr: `a CA is for an https endpoint, not "http://10.0.0.5:5000"`,
	}, {
		name:    "a CA without a certificate",
		mirror:  RegistryMirror{Endpoint: "https://reg.example", Registries: []string{"reg.example"}, CA: key},
		wantErr: "the CA holds no PEM CERTIFICATE block",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			files, err := KindRegistryHosts(tc.mirror)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(files) != len(tc.files) {
				t.Errorf("files %v, want %d", keysOf(files), len(tc.files))
			}
			for p, want := range tc.files {
				got, ok := files[p]
				switch {
				case !ok:
					t.Errorf("no %s", p)
				case want == "" && !bytes.Equal(got, tc.mirror.CA):
					t.Errorf("%s = %q, want the CA", p, got)
				case want != "" && string(got) != want:
					t.Errorf("%s =\n%s\nwant\n%s", p, got, want)
				}
			}
		})
	}
}

func keysOf(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestKindControllerManagerRateLimit applies the config's kubeadm patches
// as kind v0.33 does (a patch applies to the documents of its apiVersion
// and kind; merge patches by RFC 7386, JSON 6902 ones by evanphx/json-patch)
// to a ClusterConfiguration shaped like the one kind generates: v1beta3
// below Kubernetes 1.36, v1beta4 from 1.36. Either way exactly one patch
// applies, and the controller-manager keeps kind's own argument and gets
// the rate limit.
func TestKindControllerManagerRateLimit(t *testing.T) {
	raw, err := RenderKindConfig(KindConfig{Name: "tmbox", Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	c := decodeStrict(t, raw)
	want := map[string]string{
		"enable-hostpath-provisioner": "true",
		"kube-api-qps":                strconv.Itoa(KindControllerManagerQPS),
		"kube-api-burst":              strconv.Itoa(KindControllerManagerBurst),
	}
	for _, tc := range []struct {
		apiVersion, generated string
		// args reads controllerManager.extraArgs of the patched config.
		args func(t *testing.T, doc []byte) map[string]string
	}{{
		apiVersion: "kubeadm.k8s.io/v1beta3",
		generated: `apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
controllerManager:
  extraArgs:
    enable-hostpath-provisioner: "true"
`,
		args: func(t *testing.T, doc []byte) map[string]string {
			var got struct {
				ControllerManager struct {
					ExtraArgs map[string]string `json:"extraArgs"`
				} `json:"controllerManager"`
			}
			if err := json.Unmarshal(doc, &got); err != nil {
				t.Fatal(err)
			}
			return got.ControllerManager.ExtraArgs
		},
	}, {
		apiVersion: "kubeadm.k8s.io/v1beta4",
		generated: `apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
controllerManager:
  extraArgs:
    - name: "enable-hostpath-provisioner"
      value: "true"
`,
		args: func(t *testing.T, doc []byte) map[string]string {
			var got struct {
				ControllerManager struct {
					ExtraArgs []struct{ Name, Value string } `json:"extraArgs"`
				} `json:"controllerManager"`
			}
			if err := json.Unmarshal(doc, &got); err != nil {
				t.Fatal(err)
			}
			m := map[string]string{}
			for _, a := range got.ControllerManager.ExtraArgs {
				if _, dup := m[a.Name]; dup {
					t.Errorf("extraArgs name %s twice", a.Name)
				}
				m[a.Name] = a.Value
			}
			return m
		},
	}} {
		t.Run(tc.apiVersion, func(t *testing.T) {
			doc, err := yaml.YAMLToJSON([]byte(tc.generated))
			if err != nil {
				t.Fatal(err)
			}
			applied := 0
			for _, p := range c.KubeadmConfigPatches {
				var target struct{ APIVersion, Kind string }
				if err := yaml.Unmarshal([]byte(p), &target); err != nil {
					t.Fatal(err)
				}
				if target.APIVersion != tc.apiVersion || target.Kind != "ClusterConfiguration" {
					continue
				}
				patch, err := yaml.YAMLToJSON([]byte(p))
				if err != nil {
					t.Fatal(err)
				}
				if doc, err = jsonpatch.MergePatch(doc, patch); err != nil {
					t.Fatalf("merge patch %s: %v", p, err)
				}
				applied++
			}
			for _, p := range c.KubeadmConfigPatchesJSON6902 {
				if p.Group+"/"+p.Version != tc.apiVersion || p.Kind != "ClusterConfiguration" {
					continue
				}
				ops, err := yaml.YAMLToJSON([]byte(p.Patch))
				if err != nil {
					t.Fatal(err)
				}
				patch, err := jsonpatch.DecodePatch(ops)
				if err != nil {
					t.Fatal(err)
				}
				if doc, err = patch.Apply(doc); err != nil {
					t.Fatalf("JSON 6902 patch %s: %v", p.Patch, err)
				}
				applied++
			}
			if applied != 1 {
				t.Fatalf("%d patches apply to %s ClusterConfiguration, want 1", applied, tc.apiVersion)
			}
			if got := tc.args(t, doc); !maps.Equal(got, want) {
				t.Errorf("controller-manager extraArgs = %v, want %v", got, want)
			}
		})
	}
}
