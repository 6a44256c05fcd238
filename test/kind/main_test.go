// Package kind_test runs tmbox against real kind clusters: the test engine
// (internal/testengine: dockerd inside this test binary's loopback-only
// network namespace) and the node image hack/kindimage builds from source.
// Run through hack/netns-exec (make test-kind).
package kind_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/hack/kindimage"
	"github.com/tmbox/tmbox/internal/testengine"
)

// Paths TestMain fills in: the tmbox and server binaries it builds.
var (
	workDir   string
	tmboxBin  string
	serverBin string
)

func TestMain(m *testing.M) {
	os.Exit(testengine.Run(func() int {
		code, err := buildBinaries()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(workDir)
		if code >= 0 {
			return code
		}
		return m.Run()
	}))
}

// buildBinaries builds tmbox and the test server into workDir (skipped,
// code -1, under -short too: the tests skip themselves then).
func buildBinaries() (int, error) {
	var err error
	if workDir, err = os.MkdirTemp("", "tmbox-kindtest-"); err != nil {
		return 1, err
	}
	root, err := testengine.ModuleRoot()
	if err != nil {
		return 1, err
	}
	tmboxBin = filepath.Join(workDir, "tmbox")
	serverBin = filepath.Join(workDir, "server")
	for _, b := range []struct{ out, pkg string }{{tmboxBin, "./cmd/tmbox"}, {serverBin, "./test/kind/server"}} {
		cmd := exec.Command("go", "build", "-trimpath", "-o", b.out, b.pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOPROXY=off", "GOFLAGS=-mod=readonly")
		if out, err := cmd.CombinedOutput(); err != nil {
			return 1, fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
		}
	}
	return -1, nil
}

// Releases of the test catalog: Knative minors, as cmd/tmbox's air-gap
// fixture names them, so that 1.30 → 1.31 is a hop the planner allows.
const (
	rel1 = "1.30"
	rel2 = "1.31"
)

func versions(release string) map[string]string {
	var minor int
	fmt.Sscanf(release, "1.%d", &minor)
	return map[string]string{
		catalog.Istio: fmt.Sprintf("1.%d.0", minor-4), catalog.KnativeServing: release + ".0", catalog.NetIstio: release + ".0",
		catalog.KnativeEventing: release + ".0", catalog.TriggerMesh: "1.27.0", catalog.TriggerMeshCore: "1.5.0",
	}
}

// namespace is where component c's workload runs.
func namespace(c string) string {
	switch c {
	case catalog.Istio:
		return "istio-system"
	case catalog.KnativeServing:
		return "knative-serving"
	}
	return "tm-" + c
}

// fixture is what every test shares: the engine, the node image served
// by digest, an "upstream" registry on loopback holding the node image and
// the release images, the test catalog and mirror, and the bundles.
type fixture struct {
	eng      *testengine.Engine
	img      *kindimage.Image
	nodeRef  string // 127.0.0.1:PORT/kindest/node:v1.34.4@sha256:…
	upstream *httptest.Server
	upHost   string
	dir      string
	// embedded is the embedded catalog with the node image replaced.
	embedded string
	// catalog and mirror: the test releases rel1 and rel2.
	catalog, mirror string
	// images maps component@version to its image, pinned by digest.
	images map[string]string
	// msgs maps component@version to what its server answers.
	msgs map[string]string
	// addonImage is the add-on chart's image (pinned by digest);
	// addonConfig declares the chart as add-on "hello" (an InstallConfig).
	// bundle2 carries it; bundle1 does not.
	addonImage, addonConfig string
	// bundle1 holds rel1; bundle2 rel1 → rel2 and add-on hello; made by
	// bundles().
	bundle1, bundle2 string
	bundleOnce       sync.Once
	bundleErr        error
	upstreamStopped  bool
}

var (
	fxOnce sync.Once
	fx     *fixture
	fxErr  error
)

// setup returns the shared fixture, making it on first use.
func setup(t *testing.T) *fixture {
	t.Helper()
	eng := testengine.Shared(t) // skips under -short; fails without an engine in CI
	fxOnce.Do(func() {
		start := time.Now()
		fx, fxErr = newFixture(eng)
		t.Logf("fixture (node image served, release images pushed, catalogs written): %.1fs", time.Since(start).Seconds())
	})
	if fxErr != nil {
		t.Fatalf("fixture: %v", fxErr)
	}
	return fx
}

func newFixture(eng *testengine.Engine) (*fixture, error) {
	ctx := context.Background()
	root, err := testengine.ModuleRoot()
	if err != nil {
		return nil, err
	}
	f := &fixture{eng: eng, dir: filepath.Join(workDir, "fixture"), images: map[string]string{}, msgs: map[string]string{}}
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		return nil, err
	}
	if f.img, err = kindimage.Build(ctx, root); err != nil {
		return nil, err
	}
	if err := f.img.Load(ctx, eng.Env); err != nil {
		return nil, err
	}
	f.upstream = httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	f.upHost = strings.TrimPrefix(f.upstream.URL, "http://")
	if f.nodeRef, err = f.img.Serve(ctx, eng.Env, f.upHost); err != nil {
		return nil, err
	}
	// The embedded catalog, every release's node image the served one and
	// its host requirements this VM's (2 cores).
	emb := string(catalog.EmbeddedCatalog())
	emb = regexp.MustCompile(`(?m)^(\s*)kindNodeImage: .*$`).ReplaceAllString(emb, "${1}kindNodeImage: "+f.nodeRef)
	emb = regexp.MustCompile(`(?m)^(\s*)host: .*$`).ReplaceAllString(emb, "${1}host: {cpus: 1, memory: 1Gi, disk: 1Gi}")
	f.embedded = filepath.Join(f.dir, "embedded-catalog.yaml")
	if err := os.WriteFile(f.embedded, []byte(emb), 0o644); err != nil {
		return nil, err
	}
	if err := f.writeTestCatalog(); err != nil {
		return nil, err
	}
	return f, nil
}

// serverImage is the test server packed into an image: empty.Image, one
// layer with /server, entrypoint /server, MSG set to msg.
func serverImage(msg string) (v1.Image, error) {
	bin, err := os.ReadFile(serverBin)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "server", Mode: 0o755, Size: int64(len(bin)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Entrypoint = []string{"/server"}
	cf.Config.Env = []string{"MSG=" + msg}
	cf.Config.ExposedPorts = map[string]struct{}{"8080/tcp": {}}
	return mutate.ConfigFile(img, cf)
}

// writeTestCatalog pushes each component's server image to the upstream
// registry and writes the catalog and mirror of rel1 and rel2.
func (f *fixture) writeTestCatalog() error {
	f.mirror = filepath.Join(f.dir, "mirror")
	var cat strings.Builder
	cat.WriteString("apiVersion: tmbox.dev/v1alpha1\nkind: Catalog\nreleases:\n")
	for _, rel := range []string{rel1, rel2} {
		fmt.Fprintf(&cat, "- name: %q\n  kindNodeImage: %s\n  host: {cpus: 1, memory: 1Gi, disk: 1Gi}\n  components:\n", rel, f.nodeRef)
		for _, c := range catalog.ComponentNames() {
			fmt.Fprintf(&cat, "  - name: %s\n    version: %q\n", c, versions(rel)[c])
		}
	}
	cat.WriteString("components:\n")
	for _, rel := range []string{rel1, rel2} {
		for _, c := range catalog.ComponentNames() {
			v := versions(rel)[c]
			key := c + "@" + v
			if _, ok := f.images[key]; ok {
				continue
			}
			msg := "tmbox-test " + c + " " + v
			ref, err := f.pushServer(msg, c+":"+v)
			if err != nil {
				return err
			}
			f.images[key], f.msgs[key] = ref, msg
			manifest := componentManifest(c, ref)
			path := fmt.Sprintf("%s/%s/%s.yaml", c, v, c)
			full := filepath.Join(f.mirror, path)
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(full, []byte(manifest), 0o644); err != nil {
				return err
			}
			sum := sha256.Sum256([]byte(manifest))
			fmt.Fprintf(&cat, "- name: %s\n  version: %q\n  kubernetes: \">= 1.30\"\n  assets:\n  - name: %s.yaml\n    path: %s\n    url: https://example.invalid/%s\n    size: %d\n    sha256: %s\n  images:\n  - %q\n",
				c, v, c, path, path, len(manifest), hex.EncodeToString(sum[:]), ref)
		}
	}
	f.catalog = filepath.Join(f.dir, "catalog.yaml")
	if err := os.WriteFile(f.catalog, []byte(cat.String()), 0o644); err != nil {
		return err
	}
	return f.writeAddon()
}

// pushServer pushes the test server answering msg to the upstream
// registry as tmbox-test/NAME:TAG and returns its reference, pinned by
// digest.
func (f *fixture) pushServer(msg, nameTag string) (string, error) {
	img, err := serverImage(msg)
	if err != nil {
		return "", err
	}
	tag, err := name.NewTag(f.upHost + "/tmbox-test/" + nameTag)
	if err != nil {
		return "", err
	}
	if err := remote.Write(tag, img); err != nil {
		return "", fmt.Errorf("push %s: %w", tag, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return tag.Name() + "@" + d.String(), nil
}

// writeAddon pushes the add-on's server image to the upstream registry and
// writes its chart (a Deployment of that image, in values) and the
// InstallConfig declaring it.
func (f *fixture) writeAddon() error {
	var err error
	if f.addonImage, err = f.pushServer("tmbox-test add-on hello", "hello-addon:0.1.0"); err != nil {
		return err
	}
	chart := filepath.Join(f.dir, "hello-addon")
	files := map[string]string{
		"Chart.yaml":  "apiVersion: v2\nname: hello-addon\nversion: 0.1.0\n",
		"values.yaml": "image: " + f.addonImage + "\n",
		"templates/deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: hello-addon, namespace: {{ .Release.Namespace }}}
spec:
  replicas: 1
  selector: {matchLabels: {app: hello-addon}}
  template:
    metadata: {labels: {app: hello-addon}}
    spec:
      containers:
      - name: server
        image: {{ .Values.image }}
        ports: [{containerPort: 8080}]
        readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 2}
`,
	}
	for p, content := range files {
		full := filepath.Join(chart, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			return err
		}
	}
	f.addonConfig = filepath.Join(f.dir, "addon-config.yaml")
	config := "apiVersion: tmbox.dev/v1alpha1\nkind: InstallConfig\naddons:\n- name: hello\n  chart: " + chart + "\n  namespace: hello\n"
	return os.WriteFile(f.addonConfig, []byte(config), 0o644)
}

// componentManifest is component c: its namespace and a Deployment of the
// server; Istio's also the ingress gateway Service tmbox pins to the node
// ports kind maps (installer/components.go pinIngressNodePorts).
func componentManifest(c, image string) string {
	ns, app := namespace(c), c
	if c == catalog.Istio {
		app = "istio-ingressgateway"
	}
	m := fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  replicas: 1
  selector: {matchLabels: {app: %[2]s}}
  template:
    metadata: {labels: {app: %[2]s}}
    spec:
      containers:
      - name: server
        image: %[3]s
        ports: [{containerPort: 8080}]
        readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 2}
`, ns, app, image)
	if c == catalog.KnativeServing {
		// tmbox sets Knative's domain there (installer/platform.go).
		m += `---
apiVersion: v1
kind: ConfigMap
metadata: {name: config-domain, namespace: knative-serving}
data: {}
`
	}
	if c == catalog.Istio {
		m += `---
apiVersion: v1
kind: Service
metadata: {name: istio-ingressgateway, namespace: istio-system}
spec:
  type: LoadBalancer
  selector: {app: istio-ingressgateway}
  ports:
  - {name: http2, port: 80, targetPort: 8080}
  - {name: https, port: 443, targetPort: 8080}
`
	}
	return m
}

// bundles makes bundle1 (rel1) and bundle2 (rel1 → rel2, add-on hello) from the upstream
// registry, node image included, then stops the upstream registry: from
// then on nothing serves the release images or the node image.
func (f *fixture) bundles(t *testing.T) {
	t.Helper()
	f.bundleOnce.Do(func() {
		start := time.Now()
		f.bundle1 = filepath.Join(f.dir, "release1.bundle")
		f.bundle2 = filepath.Join(f.dir, "upgrade.bundle")
		cache := filepath.Join(f.dir, "assets-cache")
		if _, _, err := tmbox(t, "--catalog", f.catalog, "bundle", "create", "--release", rel1, "--mirror", f.mirror, "--cache-dir", cache, "--file", f.bundle1); err != nil {
			f.bundleErr = err
			return
		}
		if _, _, err := tmbox(t, "--catalog", f.catalog, "--config", f.addonConfig, "bundle", "create", "--from", rel1, "--to", rel2, "--mirror", f.mirror, "--cache-dir", cache, "--file", f.bundle2); err != nil {
			f.bundleErr = err
			return
		}
		t.Logf("bundle create ×2: %.1fs", time.Since(start).Seconds())
		f.upstream.Close()
		f.upstreamStopped = true
	})
	if f.bundleErr != nil {
		t.Fatalf("bundle create: %v", f.bundleErr)
	}
}

// tmbox runs the tmbox binary (HOME and KUBECONFIG in the work dir, so the
// user's files are never read), logging its output.
func tmbox(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	home := filepath.Join(workDir, "home")
	os.MkdirAll(home, 0o755)
	cmd := exec.CommandContext(ctx, tmboxBin, args...)
	cmd.Env = append(os.Environ(), "HOME="+home, "KUBECONFIG="+filepath.Join(home, "no-kubeconfig"), "XDG_STATE_HOME="+filepath.Join(home, "state"), "XDG_CACHE_HOME="+filepath.Join(home, "cache"))
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	err := cmd.Run()
	t.Logf("tmbox %s: %.1fs, err=%v", strings.Join(args, " "), time.Since(start).Seconds(), err)
	if err != nil {
		t.Logf("stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
		err = fmt.Errorf("tmbox %s: %w\n%s", strings.Join(args, " "), err, lastLines(errOut.String(), 30))
	} else if testing.Verbose() {
		t.Logf("stderr (last lines):\n%s", lastLines(errOut.String(), 15))
	}
	return out.String(), errOut.String(), err
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// clientFor loads a kubeconfig file.
func clientFor(t *testing.T, kubeconfig string) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	return kubernetes.NewForConfigOrDie(cfg)
}

// podReady says whether p is Running and Ready.
func podReady(p corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitFor polls cond every second until it returns true or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	last := ""
	for {
		ok, why := cond()
		if ok {
			return
		}
		if why != last {
			t.Logf("waiting for %s: %s", what, why)
			last = why
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %s", what, d, why)
		}
		time.Sleep(time.Second)
	}
}

// freePort returns a free TCP port on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// bridgeGateway is docker's default bridge's gateway address (docker0,
// inside this namespace): kind nodes reach the namespace's host side there.
func bridgeGateway(t *testing.T) string {
	t.Helper()
	gw := docker(t, "network", "inspect", "bridge", "--format", "{{range .IPAM.Config}}{{.Gateway}} {{end}}")
	for _, g := range strings.Fields(gw) {
		if ip := net.ParseIP(g); ip != nil && ip.To4() != nil {
			return g
		}
	}
	t.Fatalf("docker's bridge has no IPv4 gateway: %q", gw)
	return ""
}

// kindContainers returns "ID created" of every container of cluster name.
func kindContainers(t *testing.T, cluster string) []string {
	t.Helper()
	ids := strings.Fields(docker(t, "ps", "-aq", "--no-trunc", "--filter", "label=io.x-k8s.kind.cluster="+cluster))
	var out []string
	for _, id := range ids {
		out = append(out, docker(t, "inspect", "--format", "{{.Id}} {{.Name}} {{.Created}}", id))
	}
	slices.Sort(out)
	return out
}

// podEvents returns the messages of the events about pod ns/name.
func podEvents(t *testing.T, cs kubernetes.Interface, ns, pod string) []string {
	t.Helper()
	evs, err := cs.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + pod})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs.Items {
		out = append(out, e.Reason+": "+e.Message)
	}
	return out
}

// get fetches url and returns its body.
func get(url string) (string, error) {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("%s", resp.Status)
	}
	return string(b), err
}
