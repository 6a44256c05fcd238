package kindimage_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/tmbox/tmbox/hack/kindimage"
	"github.com/tmbox/tmbox/installer/provider"
	"github.com/tmbox/tmbox/internal/testengine"
	"github.com/tmbox/tmbox/manifests"
)

// TestMain stops the shared test engine after the tests.
func TestMain(m *testing.M) { os.Exit(testengine.Main(m)) }

func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// testWriter sends kind's log lines to the test log.
type testWriter struct{ t *testing.T }

// Write logs p as one line.
func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestKindImageBoots loads the node image hack/kindimage/build.sh built into
// the test engine and creates kind clusters from it the way tmbox does
// (installer/provider.Kind with tmbox's kind config, the image pinned by
// digest): one control-plane node, then one more with a worker. Each must
// come up with its nodes Ready, CoreDNS, kube-proxy and the CNI Running,
// and a node must reach a pod on another node. Opt in with
// TMBOX_KINDIMAGE_TEST=1; run through hack/netns-exec as root.
func TestKindImageBoots(t *testing.T) {
	if os.Getenv("TMBOX_KINDIMAGE_TEST") != "1" {
		t.Skip("set TMBOX_KINDIMAGE_TEST=1 to boot kind clusters from hack/kindimage's node image")
	}
	eng := testengine.Shared(t)
	ctx := context.Background()
	root, err := testengine.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	img, err := kindimage.Build(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("build.sh (cached): %.1fs: %s", time.Since(start).Seconds(), img.Ref)
	start = time.Now()
	if err := img.Load(ctx, eng.Env); err != nil {
		t.Fatal(err)
	}
	t.Logf("docker load: %.1fs", time.Since(start).Seconds())
	// The node image pinned by digest, as a catalog pins it: served from a
	// registry on this namespace's loopback, pulled once by digest, and the
	// registry stopped before kind runs — any pull kind tried would fail.
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	ref, err := img.Serve(ctx, eng.Env, strings.TrimPrefix(reg.URL, "http://"))
	reg.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("node image: %s", ref)
	for _, workers := range []int{0, 1} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) { boot(t, ref, workers) })
	}
}

func boot(t *testing.T, ref string, workers int) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	k := &provider.Kind{
		Config:    manifests.KindConfig{Name: fmt.Sprintf("kindimage-%d", workers), Workers: workers},
		NodeImage: ref,
		StateDir:  t.TempDir(),
		Logger:    slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
	start := time.Now()
	cfg, err := k.Ensure(ctx)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	created := time.Since(start)
	defer func() {
		start := time.Now()
		if err := k.Delete(context.Background()); err != nil {
			t.Errorf("delete: %v", err)
		}
		t.Logf("deleted in %.1fs", time.Since(start).Seconds())
		if left := docker(t, "ps", "-aq", "--filter", "label=io.x-k8s.kind.cluster="+k.Config.Name); left != "" {
			t.Errorf("containers left after delete: %s", left)
		}
	}()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var last string
	for {
		ok, why := ready(ctx, cs, workers+1)
		if ok {
			break
		}
		if why != last {
			t.Logf("%5.1fs: %s", time.Since(start).Seconds(), why)
			last = why
		}
		select {
		case <-ctx.Done():
			t.Fatalf("cluster not ready: %s", why)
		case <-time.After(time.Second):
		}
	}
	t.Logf("kind create: %.1fs; nodes Ready, CoreDNS, kube-proxy and kindnet Running: %.1fs", created.Seconds(), time.Since(start).Seconds())

	// With workers, CoreDNS is scaled out so that a replica runs on a
	// worker: it turns Ready only by reaching the API server's ClusterIP on
	// the control-plane node from the pod network. Then every node must
	// reach a CoreDNS pod on another node (the CNI's routes), or on its own
	// when there is one node.
	wantDNS := 2
	if workers > 0 {
		wantDNS = 2 + workers
		scale, err := cs.AppsV1().Deployments("kube-system").GetScale(ctx, "coredns", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		scale.Spec.Replicas = int32(wantDNS)
		if _, err := cs.AppsV1().Deployments("kube-system").UpdateScale(ctx, "coredns", scale, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var pods []corev1.Pod
	for {
		list, err := cs.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "k8s-app=kube-dns"})
		if err != nil {
			t.Fatal(err)
		}
		pods = pods[:0]
		onWorker := workers == 0
		for _, p := range list.Items {
			if podReady(p) {
				pods = append(pods, p)
				onWorker = onWorker || p.Spec.NodeName != k.Config.Name+"-control-plane"
			}
		}
		if len(pods) == wantDNS && onWorker {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("CoreDNS: %d of %d pods Ready (one on a worker: %v)", len(pods), wantDNS, onWorker)
		case <-time.After(time.Second):
		}
	}
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes.Items {
		target := pods[0]
		for _, p := range pods {
			if p.Spec.NodeName != n.Name {
				target = p
			}
		}
		out := docker(t, "exec", n.Name, "curl", "-sS", "--max-time", "10", "http://"+target.Status.PodIP+":8080/health")
		if out != "OK" {
			t.Errorf("node %s → CoreDNS pod %s on %s (%s): %q", n.Name, target.Name, target.Spec.NodeName, target.Status.PodIP, out)
		} else {
			t.Logf("node %s reaches CoreDNS pod %s on node %s", n.Name, target.Status.PodIP, target.Spec.NodeName)
		}
	}
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

// ready says whether the cluster has n Ready nodes and its CoreDNS,
// kube-proxy and kindnet pods Running and Ready, and if not, why.
func ready(ctx context.Context, cs kubernetes.Interface, n int) (bool, string) {
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return false, err.Error()
	}
	readyNodes := 0
	for _, node := range nodes.Items {
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				readyNodes++
			}
		}
	}
	if readyNodes != n {
		return false, fmt.Sprintf("%d of %d nodes Ready", readyNodes, n)
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
		var states []string
		for _, p := range pods.Items {
			if podReady(p) {
				running++
			}
			states = append(states, p.Name+"="+string(p.Status.Phase))
		}
		if running != sel.want {
			return false, fmt.Sprintf("%s: %d of %d Running and Ready %v", sel.label, running, sel.want, states)
		}
	}
	return true, ""
}
