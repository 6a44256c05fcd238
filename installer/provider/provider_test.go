package provider

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sigs.k8s.io/kind/pkg/cluster/nodes"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/kind/pkg/cluster"

	"github.com/tmbox/tmbox/manifests"
)

const (
	testImage  = "kindest/node:v1.33.1@sha256:050072256b9a903bd914c0b2866828150cb229cea0efe5892e2b644d5dd3b34f"
	testServer = "https://127.0.0.1:41234"
)

func testKubeconfig(server, name string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: %[2]s
  cluster:
    server: %[1]s
    insecure-skip-tls-verify: true
users:
- name: %[2]s
  user:
    token: secret
contexts:
- name: %[2]s
  context:
    cluster: %[2]s
    user: %[2]s
current-context: %[2]s
`, server, name)
}

// fakeEngine records the calls Kind makes; Create writes the kubeconfig
// where kind would, with a loose mode Kind has to tighten.
// ListInternalNodes implements Engine; the fake has no nodes.
func (f *fakeEngine) ListInternalNodes(name string) ([]nodes.Node, error) {
	f.calls = append(f.calls, "nodes "+name)
	return nil, nil
}

type fakeEngine struct {
	clusters  []string
	createErr error
	calls     []string
	create    reflect.Value // the kind ClusterOptions Create received
}

func (f *fakeEngine) List() ([]string, error) {
	f.calls = append(f.calls, "List")
	return f.clusters, nil
}

func (f *fakeEngine) Create(name string, options ...cluster.CreateOption) error {
	f.calls = append(f.calls, "Create "+name)
	f.create = applyCreateOptions(options)
	if f.createErr != nil {
		return f.createErr
	}
	path := f.create.FieldByName("KubeconfigPath").String()
	if err := os.WriteFile(path, []byte(testKubeconfig(testServer, "kind-"+name)), 0o644); err != nil {
		return err
	}
	f.clusters = append(f.clusters, name)
	return nil
}

func (f *fakeEngine) Delete(name, explicitKubeconfigPath string) error {
	f.calls = append(f.calls, fmt.Sprintf("Delete %s %q", name, explicitKubeconfigPath))
	return nil
}

func (f *fakeEngine) KubeConfig(name string, internal bool) (string, error) {
	f.calls = append(f.calls, fmt.Sprintf("KubeConfig %s %t", name, internal))
	return testKubeconfig(testServer, "kind-"+name), nil
}

func (f *fakeEngine) ExportKubeConfig(name, explicitPath string, internal bool) error {
	f.calls = append(f.calls, fmt.Sprintf("ExportKubeConfig %s %q %t", name, explicitPath, internal))
	return nil
}

// applyCreateOptions applies kind's opaque create options to a fresh
// internal ClusterOptions, as kind's Provider.Create does, and returns it:
// what kind would create, parsed and defaulted by kind itself.
func applyCreateOptions(options []cluster.CreateOption) reflect.Value {
	var target reflect.Value
	for _, o := range options {
		fn := reflect.ValueOf(o)
		if !target.IsValid() {
			target = reflect.New(fn.Type().In(0).Elem())
		}
		if err, _ := fn.Call([]reflect.Value{target})[0].Interface().(error); err != nil {
			panic(fmt.Sprintf("kind rejected a create option: %v", err))
		}
	}
	return target.Elem()
}

func newKind(t *testing.T, eng *fakeEngine) *Kind {
	t.Helper()
	return &Kind{
		Config:    manifests.KindConfig{Name: "tmbox", Workers: 1},
		NodeImage: testImage,
		StateDir:  filepath.Join(t.TempDir(), "state"),
		Engine:    eng,
	}
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s mode = %o, want %o", path, got, want)
	}
}

func checkRESTConfig(t *testing.T, k *Kind, eng *fakeEngine) {
	t.Helper()
	cfg, err := k.Ensure(context.Background())
	if err != nil {
		t.Fatalf("Ensure: %v (calls %v)", err, eng.calls)
	}
	if cfg.Host != testServer || cfg.QPS != 100 || cfg.Burst != 200 || cfg.UserAgent != "tmbox" {
		t.Errorf("rest config host %q qps %v burst %d agent %q", cfg.Host, cfg.QPS, cfg.Burst, cfg.UserAgent)
	}
	checkMode(t, k.KubeconfigPath(), 0o600)
	checkMode(t, filepath.Dir(k.KubeconfigPath()), 0o700)
}

func TestKindEnsureCreates(t *testing.T) {
	eng := &fakeEngine{clusters: []string{"other"}}
	k := newKind(t, eng)
	checkRESTConfig(t, k, eng)

	if want := []string{"List", "Create tmbox"}; !slices.Equal(eng.calls, want) {
		t.Fatalf("calls = %v, want %v", eng.calls, want)
	}
	if want := filepath.Join(k.StateDir, "tmbox", "kubeconfig"); k.KubeconfigPath() != want {
		t.Errorf("KubeconfigPath = %s, want %s", k.KubeconfigPath(), want)
	}
	opts := eng.create
	for field, want := range map[string]any{
		"NodeImage":         testImage,
		"WaitForReady":      DefaultKindWaitForReady,
		"KubeconfigPath":    k.KubeconfigPath(),
		"DisplayUsage":      false,
		"DisplaySalutation": false,
		"Retain":            false,
	} {
		if got := opts.FieldByName(field).Interface(); got != want {
			t.Errorf("create option %s = %v, want %v", field, got, want)
		}
	}
	// The config kind got is the rendered one, and kind's own validation
	// accepts it.
	raw, err := manifests.RenderKindConfig(k.Config)
	if err != nil {
		t.Fatal(err)
	}
	want := applyCreateOptions([]cluster.CreateOption{cluster.CreateWithRawConfig(raw)})
	got := opts.FieldByName("Config")
	if !reflect.DeepEqual(got.Interface(), want.FieldByName("Config").Interface()) {
		t.Errorf("create config = %+v, want the rendered %s", got.Elem().Interface(), raw)
	}
	if err, _ := got.MethodByName("Validate").Call(nil)[0].Interface().(error); err != nil {
		t.Errorf("kind validation of the config: %v", err)
	}
	if n := got.Elem().FieldByName("Nodes").Len(); n != 2 {
		t.Errorf("%d nodes, want 2", n)
	}
}

func TestKindEnsureWaitForReady(t *testing.T) {
	eng := &fakeEngine{}
	k := newKind(t, eng)
	k.WaitForReady = 90 * time.Second
	checkRESTConfig(t, k, eng)
	if got := eng.create.FieldByName("WaitForReady").Interface(); got != 90*time.Second {
		t.Errorf("WaitForReady = %v", got)
	}
}

func TestKindEnsureReplacesStaleKubeconfig(t *testing.T) {
	eng := &fakeEngine{}
	k := newKind(t, eng)
	if err := os.MkdirAll(filepath.Dir(k.KubeconfigPath()), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(k.KubeconfigPath(), []byte(testKubeconfig("https://stale:1", "kind-tmbox")), 0o644); err != nil {
		t.Fatal(err)
	}
	checkRESTConfig(t, k, eng)
}

func TestKindEnsureReuses(t *testing.T) {
	eng := &fakeEngine{clusters: []string{"other", "tmbox"}}
	k := newKind(t, eng)
	if err := os.MkdirAll(filepath.Dir(k.KubeconfigPath()), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(k.KubeconfigPath(), []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	checkRESTConfig(t, k, eng)
	if want := []string{"List", "KubeConfig tmbox false"}; !slices.Equal(eng.calls, want) {
		t.Errorf("calls = %v, want %v (no Create)", eng.calls, want)
	}
	b, err := os.ReadFile(k.KubeconfigPath())
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != testKubeconfig(testServer, "kind-tmbox") {
		t.Errorf("kubeconfig not refreshed:\n%s", b)
	}
}

func TestKindEnsureMergesKubeconfig(t *testing.T) {
	for _, existing := range [][]string{nil, {"tmbox"}} {
		eng := &fakeEngine{clusters: existing}
		k := newKind(t, eng)
		k.MergeKubeconfig = true
		checkRESTConfig(t, k, eng)
		if last := eng.calls[len(eng.calls)-1]; last != `ExportKubeConfig tmbox "" false` {
			t.Errorf("existing %v: calls = %v, want a final ExportKubeConfig to the default path", existing, eng.calls)
		}
	}
}

func TestKindEnsureRefusesBeforeCallingKind(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Kind)
		want string
	}{
		{"tag only", func(k *Kind) { k.NodeImage = "kindest/node:v1.33.1" }, "not pinned by digest"},
		{"short digest", func(k *Kind) { k.NodeImage = "kindest/node@sha256:abc" }, "not pinned by digest"},
		{"no name", func(k *Kind) { k.NodeImage = "@sha256:" + strings.Repeat("a", 64) }, "not pinned by digest"},
		{"empty image", func(k *Kind) { k.NodeImage = "" }, "not pinned by digest"},
		{"no state dir", func(k *Kind) { k.StateDir = "" }, "state directory is empty"},
		{"bad name", func(k *Kind) { k.Config.Name = "Bad_Name" }, "invalid kind config"},
		{"bad mirror", func(k *Kind) {
			k.Config.RegistryMirror = &manifests.RegistryMirror{Endpoint: "nope", Registries: []string{"docker.io"}}
		}, "invalid registry mirror"},
		{"negative wait", func(k *Kind) { k.WaitForReady = -time.Second }, "negative wait"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eng := &fakeEngine{}
			k := newKind(t, eng)
			tc.edit(k)
			_, err := k.Ensure(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if len(eng.calls) != 0 {
				t.Errorf("kind called: %v", eng.calls)
			}
			if k.StateDir != "" {
				if _, err := os.Stat(k.StateDir); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("state directory touched: %v", err)
				}
			}
		})
	}
}

func TestKindEnsureCancelled(t *testing.T) {
	eng := &fakeEngine{}
	k := newKind(t, eng)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := k.Ensure(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if len(eng.calls) != 0 {
		t.Errorf("kind called: %v", eng.calls)
	}
}

func TestKindEnsureCreateFails(t *testing.T) {
	eng := &fakeEngine{createErr: errors.New("boom")}
	k := newKind(t, eng)
	_, err := k.Ensure(context.Background())
	if err == nil || err.Error() != "create kind cluster tmbox: boom" {
		t.Errorf("err = %v", err)
	}
}

func TestKindEnsureAirgap(t *testing.T) {
	eng := &fakeEngine{}
	k := newKind(t, eng)
	mirror := &manifests.RegistryMirror{
		Endpoint:   "http://tmbox-registry:5000",
		Registries: []string{"docker.io", "registry.k8s.io"},
		HostsDir:   "/ignored",
	}
	k.Config.RegistryMirror = mirror
	checkRESTConfig(t, k, eng)

	hostsDir, err := filepath.Abs(filepath.Join(k.StateDir, "tmbox", "certs.d"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := manifests.KindRegistryHosts(*mirror)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range mirror.Registries {
		p := filepath.Join(hostsDir, r, "hosts.toml")
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want["certs.d/"+r+"/hosts.toml"]) || !strings.Contains(string(got), `[host."http://tmbox-registry:5000"]`) {
			t.Errorf("%s =\n%s", p, got)
		}
	}
	if mirror.HostsDir != "/ignored" {
		t.Errorf("caller's mirror modified: HostsDir = %s", mirror.HostsDir)
	}
	nodes := eng.create.FieldByName("Config").Elem().FieldByName("Nodes")
	for i := range nodes.Len() {
		mounts := nodes.Index(i).FieldByName("ExtraMounts")
		if mounts.Len() != 1 || mounts.Index(0).FieldByName("HostPath").String() != hostsDir ||
			mounts.Index(0).FieldByName("ContainerPath").String() != "/etc/containerd/certs.d" {
			t.Errorf("node %d mounts = %+v, want %s", i, mounts.Interface(), hostsDir)
		}
	}
	patches := eng.create.FieldByName("Config").Elem().FieldByName("ContainerdConfigPatches")
	if patches.Len() != 1 || !strings.Contains(patches.Index(0).String(), `config_path = "/etc/containerd/certs.d"`) {
		t.Errorf("containerd patches = %v", patches.Interface())
	}
}

func TestKindDelete(t *testing.T) {
	for _, merge := range []bool{false, true} {
		eng := &fakeEngine{}
		k := newKind(t, eng)
		k.MergeKubeconfig = merge
		k.Config.RegistryMirror = &manifests.RegistryMirror{Endpoint: "http://r:5000", Registries: []string{"quay.io"}}
		checkRESTConfig(t, k, eng)
		eng.calls = nil
		if err := k.Delete(context.Background()); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("Delete tmbox %q", k.KubeconfigPath())
		if merge {
			want = `Delete tmbox ""`
		}
		if !slices.Equal(eng.calls, []string{want}) {
			t.Errorf("merge %t: calls = %v, want %s", merge, eng.calls, want)
		}
		if _, err := os.Stat(filepath.Join(k.StateDir, "tmbox")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("merge %t: state left behind: %v", merge, err)
		}
	}
}

func TestKindKubeconfig(t *testing.T) {
	eng := &fakeEngine{clusters: []string{"tmbox"}}
	k := newKind(t, eng)
	b, err := k.Kubeconfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != testKubeconfig(testServer, "kind-tmbox") {
		t.Errorf("Kubeconfig = %s", b)
	}
	if want := []string{"KubeConfig tmbox false"}; !slices.Equal(eng.calls, want) {
		t.Errorf("calls = %v, want %v", eng.calls, want)
	}
}

func TestKindDescribe(t *testing.T) {
	k := newKind(t, &fakeEngine{})
	if k.Name() != "kind" || !strings.Contains(k.Describe(), `kind cluster "tmbox"`) || !strings.Contains(k.Describe(), testImage) {
		t.Errorf("Name %q Describe %q", k.Name(), k.Describe())
	}
}

func TestExisting(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config")
	two := `apiVersion: v1
kind: Config
clusters:
- name: one
  cluster:
    server: https://one.example:6443
- name: two
  cluster:
    server: https://two.example:6443
users:
- name: u
  user:
    token: secret
contexts:
- name: one
  context:
    cluster: one
    user: u
- name: two
  context:
    cluster: two
    user: u
current-context: one
`
	if err := os.WriteFile(path, []byte(two), 0o600); err != nil {
		t.Fatal(err)
	}

	e := &Existing{Kubeconfig: path}
	cfg, err := e.Ensure(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "https://one.example:6443" || cfg.QPS != 100 || cfg.Burst != 200 || cfg.UserAgent != "tmbox" {
		t.Errorf("rest config host %q qps %v burst %d agent %q", cfg.Host, cfg.QPS, cfg.Burst, cfg.UserAgent)
	}
	if e.Name() != "existing" || !strings.Contains(e.Describe(), path) {
		t.Errorf("Name %q Describe %q", e.Name(), e.Describe())
	}

	cfg, err = (&Existing{Kubeconfig: path, Context: "two"}).Ensure(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "https://two.example:6443" {
		t.Errorf("context two: host %q", cfg.Host)
	}

	if _, err := (&Existing{Kubeconfig: path, Context: "three"}).Ensure(context.Background()); err == nil || !strings.Contains(err.Error(), "three") {
		t.Errorf("unknown context: err = %v", err)
	}

	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := (&Existing{Kubeconfig: empty}).Ensure(context.Background()); err == nil || !strings.Contains(err.Error(), "kubeconfig "+empty+" holds no cluster") {
		t.Errorf("empty kubeconfig: err = %v", err)
	}
}

func TestExistingMissing(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	_, err := (&Existing{Kubeconfig: missing}).Ensure(context.Background())
	if err == nil || !strings.Contains(err.Error(), "kubeconfig "+missing) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing explicit file: err = %v", err)
	}

	// Nothing in KUBECONFIG exists and we are not in a pod.
	t.Setenv("KUBECONFIG", missing)
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	_, err = (&Existing{}).Ensure(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no kubeconfig found") || !strings.Contains(err.Error(), missing) {
		t.Errorf("no kubeconfig: err = %v", err)
	}
}

func TestKindLogger(t *testing.T) {
	var buf bytes.Buffer
	l := newKindLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})))
	l.V(0).Infof(" ✓ Preparing nodes %s ", "📦")
	l.V(1).Info("debug detail")
	l.Warn("careful")
	l.Errorf("failed: %d", 1)
	want := `level=INFO msg="✓ Preparing nodes 📦" source=kind
level=WARN msg=careful source=kind
level=ERROR msg="failed: 1" source=kind
`
	if buf.String() != want {
		t.Errorf("log =\n%s\nwant\n%s", buf.String(), want)
	}
	if l.V(1).Enabled() || !l.V(0).Enabled() {
		t.Error("V(1) enabled at Info level or V(0) disabled")
	}
	newKindLogger(nil).V(0).Info("discarded") // must not panic
}

// TestExistingPlainErrors: a kubeconfig that names no cluster is refused
// in plain words that say where tmbox looked and what to pass, never with
// client-go's "try setting KUBERNETES_MASTER".
func TestExistingPlainErrors(t *testing.T) {
	dir := t.TempDir()
	noCurrent := filepath.Join(dir, "no-current")
	kc := strings.Replace(testKubeconfig(testServer, "one"), "current-context: one\n", "", 1)
	if err := os.WriteFile(noCurrent, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	// client-go fixes ~/.kube/config when it initialises.
	home := clientcmd.RecommendedHomeFile
	if _, err := os.Stat(home); err == nil {
		t.Skipf("%s exists: the cases without a kubeconfig would read it", home)
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	tests := []struct {
		name       string
		kubeconfig string // $KUBECONFIG ("" unset)
		e          Existing
		want       []string
		none       bool // a *NoKubeconfigError
	}{
		{"no current context", noCurrent, Existing{}, []string{"the kubeconfig (" + noCurrent + ") sets no current context: pass --context NAME (one of one) or run kubectl config use-context NAME"}, false},
		{"unknown context", "", Existing{Kubeconfig: noCurrent, Context: "two"}, []string{"--context two: the kubeconfig (" + noCurrent + ") has no such context; it has one"}, false},
		{"nothing in $KUBECONFIG", filepath.Join(dir, "absent"), Existing{}, []string{"no kubeconfig found (looked in $KUBECONFIG (" + filepath.Join(dir, "absent") + ") and the in-cluster service account (KUBERNETES_SERVICE_HOST is not set))", "--kubeconfig FILE (and --context NAME)", "--create-cluster"}, true},
		{"no ~/.kube/config", "", Existing{}, []string{"looked in ~/.kube/config (" + home + ")"}, true},
		{"context without any kubeconfig", "", Existing{Context: "prod"}, []string{"--context prod: no kubeconfig found (looked in ~/.kube/config"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.kubeconfig != "" {
				t.Setenv("KUBECONFIG", tt.kubeconfig)
			} else {
				os.Unsetenv("KUBECONFIG")
			}
			for _, call := range []func() error{
				func() error { _, err := tt.e.Ensure(context.Background()); return err },
				func() error { _, _, err := tt.e.Endpoint(); return err },
			} {
				err := call()
				if err == nil {
					t.Fatal("accepted")
				}
				for _, w := range tt.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				var ne *NoKubeconfigError
				if errors.As(err, &ne) != tt.none || strings.Contains(err.Error(), "KUBERNETES_MASTER") {
					t.Errorf("error %T %q", err, err)
				}
			}
		})
	}
}

// TestExistingEndpoint: the context and server a prompt names, read from
// the kubeconfig without contacting the cluster.
func TestExistingEndpoint(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(path, []byte(testKubeconfig(testServer, "kind-tmbox")), 0o600); err != nil {
		t.Fatal(err)
	}
	name, server, err := (&Existing{Kubeconfig: path}).Endpoint()
	if err != nil || name != "kind-tmbox" || server != testServer {
		t.Errorf("Endpoint: %q %q %v", name, server, err)
	}
	name, server, err = (&Existing{Config: &rest.Config{Host: "https://192.0.2.1:6443"}}).Endpoint()
	if err != nil || name != "" || server != "https://192.0.2.1:6443" {
		t.Errorf("Endpoint of a Config: %q %q %v", name, server, err)
	}
}

// TestKindExists: whether the engine runs a cluster of the config's name.
func TestKindExists(t *testing.T) {
	for _, tt := range []struct {
		clusters []string
		want     bool
	}{{nil, false}, {[]string{"other"}, false}, {[]string{"other", "dev"}, true}} {
		k := &Kind{Config: manifests.KindConfig{Name: "dev"}, Engine: &fakeEngine{clusters: tt.clusters}}
		if got, err := k.Exists(); err != nil || got != tt.want {
			t.Errorf("clusters %v: Exists() = %v, %v; want %v", tt.clusters, got, err, tt.want)
		}
	}
}
