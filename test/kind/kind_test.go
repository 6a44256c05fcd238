package kind_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/tmbox/tmbox/bundle"
	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/manifests"
)

// TestKindPreflight: tmbox preflight --create-cluster with the engine
// running. container-engine must pass (it found this engine); what the
// cgroup, inotify and port checks say on this VM goes to the log, and the
// port check must pass for free ports and fail for a taken one.
func TestKindPreflight(t *testing.T) {
	f := setup(t)
	state := t.TempDir()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port
	type result struct {
		Name, Status, Message string
	}
	check := func(httpPort int) map[string]result {
		out, _, err := tmbox(t, "--catalog", f.embedded, "preflight", "--create-cluster", "--state-dir", state, "--cluster-name", "tmbox-preflight",
			"--http-port", strconv.Itoa(httpPort), "--https-port", strconv.Itoa(freePort(t)), "-o", "json")
		t.Logf("preflight (exit: %v):\n%s", err, out)
		got := map[string]result{}
		var report struct{ Results []result }
		if err := json.Unmarshal([]byte(out), &report); err != nil {
			t.Fatalf("preflight -o json: %v", err)
		}
		for _, res := range report.Results {
			got[res.Name] = res
		}
		if len(got) == 0 {
			t.Fatalf("no preflight results in the output (err %v)", err)
		}
		return got
	}
	got := check(freePort(t))
	for _, n := range []string{"container-engine", "cgroup-v2", "inotify-limits", "host-ports"} {
		r, ok := got[n]
		if !ok {
			t.Errorf("no %s check", n)
			continue
		}
		t.Logf("%-16s %-4s %s", n, r.Status, r.Message)
	}
	if r := got["container-engine"]; r.Status != "pass" {
		t.Errorf("container-engine with the test engine running: %s: %s", r.Status, r.Message)
	}
	if r := got["host-ports"]; r.Status != "pass" {
		t.Errorf("host-ports with free ports: %s: %s", r.Status, r.Message)
	}
	// cgroup v1 here: the check must say so (fail or warn), not pass.
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err != nil {
		if r := got["cgroup-v2"]; r.Status == "pass" {
			t.Errorf("cgroup-v2 passes on a cgroup v1 host: %s", r.Message)
		}
	}
	if r := check(busyPort)["host-ports"]; r.Status != "fail" {
		t.Errorf("host-ports with port %d taken: %s: %s", busyPort, r.Status, r.Message)
	}
}

// ignoreHost are the host checks this VM fails for reasons of its own
// (cgroup v1; inotify limits if low): tmbox's kind path must still work.
var ignoreHost = []string{"--ignore-preflight-errors", "cgroup-v2,inotify-limits"}

// TestKindClusterLifecycle: tmbox cluster create → a real cluster (nodes
// Ready, CoreDNS and the CNI Running), its kubeconfig 0600 under the state
// dir; a second create reuses it; a pod on the worker reaches a pod on the
// control plane; tmbox cluster delete removes the containers, the kind
// network and the kubeconfig.
func TestKindClusterLifecycle(t *testing.T) {
	f := setup(t)
	const cluster = "tmbox-life"
	state := t.TempDir()
	args := append([]string{"--catalog", f.embedded, "cluster", "create", "--state-dir", state, "--cluster-name", cluster, "--workers", "1",
		"--http-port", "-1", "--https-port", "-1"}, ignoreHost...)
	start := time.Now()
	if _, _, err := tmbox(t, args...); err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster create: %.1fs", time.Since(start).Seconds())
	deleted := false
	defer func() {
		if !deleted {
			tmbox(t, "cluster", "delete", "--state-dir", state, "--cluster-name", cluster)
		}
	}()
	kubeconfig := filepath.Join(state, cluster, "kubeconfig")
	fi, err := os.Stat(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("kubeconfig %s mode %v, want 0600", kubeconfig, fi.Mode().Perm())
	}
	cs := clientFor(t, kubeconfig)
	ctx := context.Background()
	waitFor(t, 5*time.Minute, "nodes Ready, CoreDNS, kube-proxy and kindnet Running", func() (bool, string) {
		return systemReady(ctx, cs, 2)
	})
	t.Logf("cluster ready: %.1fs after create started", time.Since(start).Seconds())
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes.Items {
		if !strings.HasPrefix(n.Status.NodeInfo.KubeletVersion, "v1.34") || !strings.HasPrefix(n.Status.NodeInfo.ContainerRuntimeVersion, "containerd://") {
			t.Errorf("node %s: kubelet %s, runtime %s", n.Name, n.Status.NodeInfo.KubeletVersion, n.Status.NodeInfo.ContainerRuntimeVersion)
		}
	}

	controllerManagerLimited(ctx, t, cs, cluster)

	// A second create reuses the cluster: the same containers, created at
	// the same time.
	before := kindContainers(t, cluster)
	if len(before) != 2 {
		t.Fatalf("containers of %s: %v, want 2", cluster, before)
	}
	if _, _, err := tmbox(t, args...); err != nil {
		t.Fatal(err)
	}
	if after := kindContainers(t, cluster); !slices.Equal(before, after) {
		t.Errorf("second create did not reuse the cluster:\nbefore %v\nafter  %v", before, after)
	}
	if fi, err := os.Stat(kubeconfig); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("kubeconfig after reuse: %v %v", fi, err)
	}

	// Pod network: a client pod on the worker fetches from a server pod on
	// the control plane by its pod IP.
	loadServerImage(t, cluster)
	srv := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "server", Namespace: "default"},
		Spec: corev1.PodSpec{NodeName: cluster + "-control-plane", Containers: []corev1.Container{{
			Name: "server", Image: lifecycleImage, ImagePullPolicy: corev1.PullNever,
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(8080)}}, PeriodSeconds: 1},
		}}},
	}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, srv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var srvIP string
	waitFor(t, 2*time.Minute, "server pod on the control plane Ready", func() (bool, string) {
		p, err := cs.CoreV1().Pods("default").Get(ctx, "server", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		srvIP = p.Status.PodIP
		return podReady(*p), string(p.Status.Phase)
	})
	cli := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "client", Namespace: "default"},
		Spec: corev1.PodSpec{NodeName: cluster + "-worker", RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{
			Name: "client", Image: lifecycleImage, ImagePullPolicy: corev1.PullNever, Args: []string{"-get", "http://" + srvIP + ":8080/"},
		}}},
	}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, cli, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, "client pod on the worker done", func() (bool, string) {
		p, err := cs.CoreV1().Pods("default").Get(ctx, "client", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		if p.Status.Phase == corev1.PodFailed {
			t.Fatalf("client pod on the worker failed to reach %s: %v", srvIP, podEvents(t, cs, "default", "client"))
		}
		return p.Status.Phase == corev1.PodSucceeded, string(p.Status.Phase)
	})
	logs, err := cs.CoreV1().Pods("default").GetLogs("client", &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(logs), "lifecycle server") {
		t.Errorf("worker pod → control-plane pod %s: %q", srvIP, logs)
	} else {
		t.Logf("pod on %s-worker reached pod %s on %s-control-plane: %q", cluster, srvIP, cluster, strings.TrimSpace(string(logs)))
	}

	// Delete: containers, the kind network and the kubeconfig go.
	start = time.Now()
	if _, _, err := tmbox(t, "cluster", "delete", "--state-dir", state, "--cluster-name", cluster); err != nil {
		t.Fatal(err)
	}
	deleted = true
	t.Logf("cluster delete: %.1fs", time.Since(start).Seconds())
	if left := kindContainers(t, cluster); len(left) != 0 {
		t.Errorf("containers left after delete: %v", left)
	}
	if _, err := os.Stat(kubeconfig); !os.IsNotExist(err) {
		t.Errorf("kubeconfig after delete: %v", err)
	}
	if nets := docker(t, "network", "ls", "--filter", "name=^kind$", "--format", "{{.Name}}"); nets != "" {
		t.Errorf("kind network %q left after deleting the only cluster", nets)
		docker(t, "network", "rm", "kind") // so the next test starts clean
	}
}

const lifecycleImage = "tmbox.test/server:lifecycle"

// loadServerImage imports the test server image into every node's
// containerd (as kind load does) for TestKindClusterLifecycle's pods.
func loadServerImage(t *testing.T, cluster string) {
	t.Helper()
	img, err := serverImage("lifecycle server")
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag(lifecycleImage)
	archive := filepath.Join(t.TempDir(), "server.tar")
	if err := tarball.WriteToFile(archive, tag, img); err != nil {
		t.Fatal(err)
	}
	for _, node := range []string{cluster + "-control-plane", cluster + "-worker"} {
		in, err := os.Open(archive)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("docker", "exec", "-i", node, "ctr", "--namespace=k8s.io", "images", "import", "--all-platforms", "--digests", "-")
		cmd.Stdin = in
		out, err := cmd.CombinedOutput()
		in.Close()
		if err != nil {
			t.Fatalf("import into %s: %v\n%s", node, err, out)
		}
	}
}

// systemReady: n nodes Ready, CoreDNS, kube-proxy and kindnet Running and
// Ready.
// controllerManagerLimited checks that the controller-manager kubeadm
// started runs with the client rate limit tmbox's kind config sets, and
// still with kind's own arguments.
func controllerManagerLimited(ctx context.Context, t *testing.T, cs kubernetes.Interface, cluster string) {
	t.Helper()
	pod, err := cs.CoreV1().Pods("kube-system").Get(ctx, "kube-controller-manager-"+cluster+"-control-plane", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	args := pod.Spec.Containers[0].Command
	for _, want := range []string{
		"--kube-api-qps=" + strconv.Itoa(manifests.KindControllerManagerQPS),
		"--kube-api-burst=" + strconv.Itoa(manifests.KindControllerManagerBurst),
		"--enable-hostpath-provisioner=true",
	} {
		if !slices.Contains(args, want) {
			t.Errorf("controller-manager runs without %s: %q", want, args)
		}
	}
}

func systemReady(ctx context.Context, cs kubernetes.Interface, n int) (bool, string) {
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return false, err.Error()
	}
	ready := 0
	for _, node := range nodes.Items {
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				ready++
			}
		}
	}
	if ready != n {
		return false, fmt.Sprintf("%d of %d nodes Ready", ready, n)
	}
	for _, sel := range []struct {
		label string
		want  int
	}{{"k8s-app=kube-dns", 2}, {"k8s-app=kube-proxy", n}, {"app=kindnet", n}} {
		pods, err := cs.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: sel.label})
		if err != nil {
			return false, err.Error()
		}
		running := 0
		for _, p := range pods.Items {
			if podReady(p) {
				running++
			}
		}
		if running != sel.want {
			return false, fmt.Sprintf("%s: %d of %d Running and Ready", sel.label, running, sel.want)
		}
	}
	return true, ""
}

// airgap is the cluster TestKindInstallServes installs from bundle1 with
// every registry stopped; TestKindAirGapped checks it.
var airgap struct {
	once                sync.Once
	err                 error
	state, kubeconfig   string
	httpPort            int
	upstreamWasStopped  bool
	upstreamUnreachable error
	installed           time.Duration
	// args and output are the install's command line, stdout and stderr.
	args   []string
	output string
}

const airgapCluster = "tmbox-airgap"

func airgapInstall(t *testing.T) {
	t.Helper()
	f := setup(t)
	f.bundles(t)
	airgap.once.Do(func() {
		airgap.state = filepath.Join(workDir, "airgap-state")
		airgap.kubeconfig = filepath.Join(airgap.state, airgapCluster, "kubeconfig")
		airgap.httpPort = freePort(t)
		// The registries are gone: the upstream (release and node images)
		// was stopped after bundle create; nothing answers there.
		airgap.upstreamWasStopped = f.upstreamStopped
		_, airgap.upstreamUnreachable = get("http://" + f.upHost + "/v2/")
		start := time.Now()
		var stdout, stderr string
		airgap.args = append([]string{"install", "--create-cluster", "--bundle", f.bundle1, "--release", rel1, "--state-dir", airgap.state,
			"--cluster-name", airgapCluster, "--workers", "1", "--http-port", strconv.Itoa(airgap.httpPort), "--https-port", strconv.Itoa(freePort(t)),
			"--listen-address", "127.0.0.1", "--yes", "--timeout", "5m"}, ignoreHost...)
		stdout, stderr, airgap.err = tmbox(t, airgap.args...)
		airgap.installed = time.Since(start)
		airgap.output = stdout + stderr
	})
	if airgap.err != nil {
		t.Fatalf("install --create-cluster --bundle: %v", airgap.err)
	}
}

// releasePods checks that every component of release rel runs its image on
// a real node, Ready, and returns the pods.
func releasePods(t *testing.T, cs kubernetes.Interface, rel string, imageOf func(c, v string) string) map[string]corev1.Pod {
	t.Helper()
	f := fx
	ctx := context.Background()
	out := map[string]corev1.Pod{}
	for _, c := range catalog.ComponentNames() {
		v := versions(rel)[c]
		p := readyPod(t, cs, namespace(c), imageOf(c, v), c+" pod")
		out[c] = p
		node, err := cs.CoreV1().Nodes().Get(ctx, p.Spec.NodeName, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("pod %s/%s on node %q: %v", p.Namespace, p.Name, p.Spec.NodeName, err)
		}
		if node.Status.NodeInfo.KubeletVersion == "" || strings.Contains(node.Status.NodeInfo.KubeletVersion, "kwok") {
			t.Errorf("node %s is not a real kubelet: %+v", node.Name, node.Status.NodeInfo)
		}
		_ = f
	}
	return out
}

// TestKindInstallServes: tmbox install --create-cluster of a test release
// whose components are the test server → its pods Running on real nodes,
// and a GET on the mapped host port on the listen address reaches the
// ingress gateway Service through kind's port mapping and node port 31080.
//
// The release's images come from the bundle (the same install
// TestKindAirGapped checks); TestKindRegistryMirror installs from a
// registry instead.
func TestKindInstallServes(t *testing.T) {
	airgapInstall(t)
	t.Logf("install --create-cluster --bundle: %.1fs", airgap.installed.Seconds())
	fi, err := os.Stat(airgap.kubeconfig)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("kubeconfig %s: %v %v", airgap.kubeconfig, fi, err)
	}
	cs := clientFor(t, airgap.kubeconfig)
	pods := releasePods(t, cs, rel1, func(c, v string) string { return fx.images[c+"@"+v] })
	nodesUsed := map[string]bool{}
	for _, p := range pods {
		nodesUsed[p.Spec.NodeName] = true
	}
	t.Logf("release %s: %d pods Ready on nodes %v", rel1, len(pods), nodesUsed)
	svc, err := cs.CoreV1().Services("istio-system").Get(context.Background(), "istio-ingressgateway", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.Type != corev1.ServiceTypeNodePort {
		t.Errorf("gateway Service type %s, want NodePort", svc.Spec.Type)
	}
	for _, p := range svc.Spec.Ports {
		if p.Port == 80 && p.NodePort != manifests.IngressHTTPNodePort {
			t.Errorf("gateway port 80 → node port %d, want %d", p.NodePort, manifests.IngressHTTPNodePort)
		}
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", airgap.httpPort)
	// The install's verify phase asked the gateway through the host port
	// before it returned.
	if probed := "the ingress gateway answers on " + url + " (200 OK)"; !strings.Contains(airgap.output, probed) {
		t.Errorf("the install does not say %q:\n%s", probed, lastLines(airgap.output, 20))
	}
	want := fx.msgs[catalog.Istio+"@"+versions(rel1)[catalog.Istio]] + " " + pods[catalog.Istio].Name
	var body string
	waitFor(t, time.Minute, "GET "+url, func() (bool, string) {
		b, err := get(url)
		body = b
		if err != nil {
			return false, err.Error()
		}
		return strings.TrimSpace(b) == want, b
	})
	t.Logf("GET %s → %q (host port → kind node port %d → Service → pod)", url, strings.TrimSpace(body), manifests.IngressHTTPNodePort)

	// The same command again converges the cluster it made: the host
	// ports it holds are its own, and the state keeps its address.
	stdout, stderr, err := tmbox(t, airgap.args...)
	if err != nil {
		t.Fatalf("re-run: %v", err)
	}
	if probed := "the ingress gateway answers on " + url + " (200 OK)"; !strings.Contains(stdout+stderr, probed) {
		t.Errorf("the re-run does not say %q:\n%s", probed, lastLines(stdout+stderr, 20))
	}
}

// TestKindAirGapped: the install above ran with every registry stopped:
// the node image came out of the bundle (docker load), the release images
// were imported into every node's containerd, and no pod pulled.
func TestKindAirGapped(t *testing.T) {
	airgapInstall(t)
	if !airgap.upstreamWasStopped || airgap.upstreamUnreachable == nil {
		t.Fatalf("the upstream registry answered during the air-gapped install (stopped %v, GET /v2/: %v)", airgap.upstreamWasStopped, airgap.upstreamUnreachable)
	}
	t.Logf("upstream registry %s during install: %v", fx.upHost, airgap.upstreamUnreachable)
	cs := clientFor(t, airgap.kubeconfig)
	ctx := context.Background()
	pods := releasePods(t, cs, rel1, func(c, v string) string { return fx.images[c+"@"+v] })
	notPulled(t, cs, pods)
	// Every image of the bundle is in every node's containerd, and the
	// node runs the image the bundle held (loaded, not pulled: its tag).
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes.Items {
		list := nodeImages(t, n.Name)
		for c, v := range versions(rel1) {
			if ref := fx.images[c+"@"+v]; !slices.Contains(list, importedName(ref)) {
				t.Errorf("node %s lacks %s", n.Name, importedName(ref))
			}
		}
		noReleasePull(t, n.Name)
	}
	node := docker(t, "inspect", "--format", "{{.Config.Image}}", airgapCluster+"-control-plane")
	if want := strings.SplitN(fx.nodeRef, "@", 2)[0]; node != want {
		t.Errorf("node container runs image %s, want the bundle's %s", node, want)
	}

	// tmbox upgrade --bundle on the kind cluster tmbox made, with no
	// registry: the hop imports the next release's images into every
	// node (nothing could pull them: every registry is stopped), and its
	// pods start without a pull. The upgrade also adds add-on hello, from
	// the bundle: its image, new in the bundle, is imported the same way.
	t.Run("upgrade from a bundle imports the next release and the add-ons", func(t *testing.T) {
		var changed []string
		for c, v := range versions(rel2) {
			if versions(rel1)[c] != v {
				changed = append(changed, importedName(fx.images[c+"@"+v]))
			}
		}
		if len(changed) == 0 {
			t.Fatal("the test releases share every image: nothing to import")
		}
		for _, n := range nodes.Items {
			if list := nodeImages(t, n.Name); slices.ContainsFunc(changed, func(ref string) bool { return slices.Contains(list, ref) }) {
				t.Fatalf("node %s holds %s's images before the upgrade: %v", n.Name, rel2, list)
			}
		}
		start := time.Now()
		_, errOut, err := tmbox(t, "upgrade", "--kubeconfig", airgap.kubeconfig, "--config", fx.addonConfig, "--bundle", fx.bundle2, "--to", rel2, "--state-dir", airgap.state, "--yes", "--timeout", "5m")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("upgrade %s → %s from the bundle, images imported: %.1fs", rel1, rel2, time.Since(start).Seconds())
		if want := "imported its " + strconv.Itoa(len(versions(rel2))) + " images into the nodes of kind cluster " + airgapCluster; !strings.Contains(errOut, want) {
			t.Errorf("upgrade does not report the import (%q):\n%s", want, lastLines(errOut, 30))
		}
		if want := "the 1 images of add-ons hello: imported into the nodes of kind cluster " + airgapCluster; !strings.Contains(errOut, want) {
			t.Errorf("upgrade does not report the add-on's import (%q):\n%s", want, lastLines(errOut, 30))
		}
		pods := releasePods(t, cs, rel2, func(c, v string) string { return fx.images[c+"@"+v] })
		pods["add-on hello"] = readyPod(t, cs, "hello", fx.addonImage, "add-on hello's pod")
		notPulled(t, cs, pods)
		for _, n := range nodes.Items {
			list := nodeImages(t, n.Name)
			for _, ref := range append(changed, importedName(fx.addonImage)) {
				if !slices.Contains(list, ref) {
					t.Errorf("node %s lacks %s after the upgrade", n.Name, ref)
				}
			}
			noReleasePull(t, n.Name)
		}
	})
	if _, _, err := tmbox(t, "cluster", "delete", "--state-dir", airgap.state, "--cluster-name", airgapCluster); err != nil {
		t.Error(err)
	}
}

// notPulled checks that no pod pulled its image: no Pulling, Pulled or
// Failed event, and an "already present on machine" one.
func notPulled(t *testing.T, cs kubernetes.Interface, pods map[string]corev1.Pod) {
	t.Helper()
	for c, p := range pods {
		evs := podEvents(t, cs, p.Namespace, p.Name)
		present := false
		for _, e := range evs {
			if strings.HasPrefix(e, "Pulling:") || strings.HasPrefix(e, "Pulled: Successfully pulled") || strings.HasPrefix(e, "Failed:") {
				t.Errorf("%s pod %s/%s pulled: %q", c, p.Namespace, p.Name, e)
			}
			present = present || strings.Contains(e, "already present on machine")
		}
		if !present {
			t.Errorf("%s pod %s/%s: no \"already present on machine\" event: %v", c, p.Namespace, p.Name, evs)
		}
	}
}

// readyPod waits for a pod of namespace ns Running and Ready with image
// (what names it in messages), and returns it.
func readyPod(t *testing.T, cs kubernetes.Interface, ns, image, what string) corev1.Pod {
	t.Helper()
	var out corev1.Pod
	waitFor(t, 3*time.Minute, what+" Running and Ready", func() (bool, string) {
		pods, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		var states []string
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil && podReady(p) && p.Spec.Containers[0].Image == image {
				out = p
				return true, ""
			}
			states = append(states, fmt.Sprintf("%s %s %s", p.Name, p.Status.Phase, p.Spec.Containers[0].Image))
		}
		return false, fmt.Sprintf("want image %s: %v", image, states)
	})
	return out
}

// nodeImages lists the image names in a node's containerd (k8s.io
// namespace).
func nodeImages(t *testing.T, node string) []string {
	t.Helper()
	return strings.Fields(docker(t, "exec", node, "ctr", "--namespace=k8s.io", "images", "ls", "-q"))
}

// importedName is the name an image is imported into the nodes under:
// the one containerd's CRI looks it up by, where a tag and a digest
// become the digest alone.
func importedName(ref string) string {
	if j := strings.Index(ref, "@"); j > 0 {
		if i := strings.LastIndex(ref[:j], ":"); i > strings.LastIndex(ref[:j], "/") {
			return ref[:i] + ref[j:]
		}
	}
	return ref
}

// noReleasePull checks containerd's log on a node: no pull of a release
// image.
func noReleasePull(t *testing.T, node string) {
	t.Helper()
	journal := docker(t, "exec", node, "journalctl", "-u", "containerd", "--no-pager", "-o", "cat")
	for _, line := range strings.Split(journal, "\n") {
		if strings.Contains(line, "PullImage") && strings.Contains(line, fx.upHost) {
			t.Errorf("node %s: containerd pulled: %s", node, line)
		}
	}
}

// mirror is the kind cluster tmbox install --create-cluster --registry
// creates: containerd on every node pulls the registry's host through the
// hosts.toml tmbox writes (certs.d, mounted into the nodes), and the
// registry listens on docker's bridge gateway inside this namespace, an
// address the nodes reach.
var mirror struct {
	once       sync.Once
	err        error
	state      string
	kubeconfig string
	registry   string // HOST:PORT/PREFIX tmbox pushes to
	host       string
	srv        *http.Server
}

const mirrorCluster = "tmbox-mirror"

func mirrorInstall(t *testing.T) {
	t.Helper()
	f := setup(t)
	f.bundles(t)
	mirror.once.Do(func() {
		mirror.err = func() error {
			gw := bridgeGateway(t)
			l, err := net.Listen("tcp", net.JoinHostPort(gw, "0"))
			if err != nil {
				return err
			}
			mirror.host = l.Addr().String()
			mirror.registry = mirror.host + "/mirror"
			mirror.srv = &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
			go mirror.srv.Serve(l)
			mirror.state = filepath.Join(workDir, "mirror-state")
			mirror.kubeconfig = filepath.Join(mirror.state, mirrorCluster, "kubeconfig")
			start := time.Now()
			_, _, err = tmbox(t, append([]string{"install", "--create-cluster", "--cluster-name", mirrorCluster, "--bundle", f.bundle1, "--release", rel1,
				"--registry", mirror.registry, "--state-dir", mirror.state, "--http-port", "-1", "--https-port", "-1", "--yes", "--timeout", "5m"}, ignoreHost...)...)
			t.Logf("install --create-cluster --bundle --registry %s: %.1fs", mirror.registry, time.Since(start).Seconds())
			return err
		}()
	})
	if mirror.err != nil {
		t.Fatalf("registry mirror cluster: %v", mirror.err)
	}
}

// mirrored is the reference tmbox rewrites ref to under --registry.
func mirrored(t *testing.T, ref string) string {
	t.Helper()
	r, err := bundle.RegistryRef(mirror.registry, ref, "")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// pulledFromMirror checks that each pod's image was pulled (not found on
// the node) and comes from the mirror registry.
func pulledFromMirror(t *testing.T, cs kubernetes.Interface, pods map[string]corev1.Pod) {
	t.Helper()
	for c, p := range pods {
		if img := p.Spec.Containers[0].Image; !strings.HasPrefix(img, mirror.registry+"/") {
			t.Errorf("%s pod %s/%s runs %s, not from %s", c, p.Namespace, p.Name, img, mirror.registry)
		}
		evs := podEvents(t, cs, p.Namespace, p.Name)
		pulled := false
		for _, e := range evs {
			pulled = pulled || (strings.HasPrefix(e, "Pulled: Successfully pulled") && strings.Contains(e, mirror.host))
		}
		if !pulled {
			t.Errorf("%s pod %s/%s: no \"Successfully pulled\" from %s: %v", c, p.Namespace, p.Name, mirror.host, evs)
		}
	}
}

// TestKindRegistryMirror: tmbox install --registry pushes the bundle's
// images to the registry the nodes' containerd mirrors (hosts.toml),
// rewrites every reference there, and containerd on the nodes pulls from
// it: the pods run.
func TestKindRegistryMirror(t *testing.T) {
	mirrorInstall(t)
	// The hosts.toml tmbox wrote, as every node's containerd reads it.
	want := fmt.Sprintf("[host.%q]", "http://"+mirror.host)
	hosts, err := os.ReadFile(filepath.Join(mirror.state, mirrorCluster, "certs.d", mirror.host, "hosts.toml"))
	if err != nil || !strings.Contains(string(hosts), want) {
		t.Errorf("hosts.toml of %s (%v):\n%s\nwant %s", mirror.host, err, hosts, want)
	}
	if inNode := docker(t, "exec", mirrorCluster+"-control-plane", "cat", "/etc/containerd/certs.d/"+mirror.host+"/hosts.toml"); inNode != strings.TrimSpace(string(hosts)) {
		t.Errorf("the node reads another hosts.toml:\n%s", inNode)
	}
	cs := clientFor(t, mirror.kubeconfig)
	pods := releasePods(t, cs, rel1, func(c, v string) string { return mirrored(t, fx.images[c+"@"+v]) })
	pulledFromMirror(t, cs, pods)
	for c, p := range pods {
		ref, _ := name.ParseReference(p.Spec.Containers[0].Image)
		if _, err := remote.Head(ref); err != nil {
			t.Errorf("%s: %s not in the mirror registry: %v", c, ref, err)
		}
	}
}

// TestKindUpgradeUninstall: on the mirror cluster, tmbox upgrade --to the
// next release (a changed image of the server in every Istio and Knative
// component) and tmbox uninstall --yes → the release's namespaces gone.
func TestKindUpgradeUninstall(t *testing.T) {
	mirrorInstall(t)
	cs := clientFor(t, mirror.kubeconfig)
	start := time.Now()
	_, errOut, err := tmbox(t, "upgrade", "--kubeconfig", mirror.kubeconfig, "--bundle", fx.bundle2, "--to", rel2, "--state-dir", mirror.state, "--yes", "--timeout", "5m")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("upgrade %s → %s: %.1fs", rel1, rel2, time.Since(start).Seconds())
	// The hop pushed what the registry lacked: the changed components'
	// images (the install pushed the rest).
	changed := 0
	for c, v := range versions(rel2) {
		if versions(rel1)[c] != v {
			changed++
		}
	}
	if want := fmt.Sprintf("release %s: pushed %d of its %d images to %s", rel2, changed, len(versions(rel2)), mirror.registry); !strings.Contains(errOut, want) {
		t.Errorf("upgrade does not report the hop's push (%q):\n%s", want, lastLines(errOut, 30))
	}
	pods := releasePods(t, cs, rel2, func(c, v string) string { return mirrored(t, fx.images[c+"@"+v]) })
	for c, p := range pods {
		if versions(rel1)[c] == versions(rel2)[c] {
			continue
		}
		out := docker(t, "exec", mirrorCluster+"-control-plane", "curl", "-sS", "--max-time", "10", "http://"+p.Status.PodIP+":8080/")
		if want := fx.msgs[c+"@"+versions(rel2)[c]]; !strings.HasPrefix(out, want+" ") {
			t.Errorf("%s after the upgrade answers %q, want %q", c, out, want)
		}
	}
	start = time.Now()
	if _, _, err := tmbox(t, "uninstall", "--kubeconfig", mirror.kubeconfig, "--yes"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	waitFor(t, 3*time.Minute, "the release's namespaces gone", func() (bool, string) {
		var left []string
		for _, c := range catalog.ComponentNames() {
			if _, err := cs.CoreV1().Namespaces().Get(ctx, namespace(c), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				left = append(left, namespace(c))
			}
		}
		return len(left) == 0, fmt.Sprintf("left: %v", left)
	})
	t.Logf("uninstall: namespaces gone %.1fs after it started", time.Since(start).Seconds())
	if _, _, err := tmbox(t, "cluster", "delete", "--state-dir", mirror.state, "--cluster-name", mirrorCluster); err != nil {
		t.Error(err)
	}
	mirror.srv.Close()
}
