package installer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer/apply"
	"github.com/tmbox/tmbox/internal/testcluster"
	"github.com/tmbox/tmbox/preflight"
)

var suite = testcluster.NewSuite(testcluster.Options{Nodes: 2})

// helperEnv makes the test binary run one install and exit: the SIGKILL
// test's subprocess.
const helperEnv = "TMBOX_TEST_INSTALL_HELPER"

func TestMain(m *testing.M) {
	if kc := os.Getenv(helperEnv); kc != "" {
		os.Exit(installHelper(kc))
	}
	os.Exit(suite.Main(m))
}

func installHelper(kubeconfig string) int {
	in := &Install{Options: Options{Release: "1.21", Mirror: os.Getenv("TMBOX_TEST_MIRROR"), Kubeconfig: kubeconfig, PhaseTimeout: 2 * time.Minute}}
	if _, err := in.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "install:", err)
		return 1
	}
	return 0
}

func mirrorDir(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "shared", "upstream"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the upstream manifests are needed at %s: %v", dir, err)
	}
	return dir
}

func install(t *testing.T, cfg *rest.Config, release string, mut func(*Options)) (time.Duration, error) {
	t.Helper()
	var events bytes.Buffer
	in := &Install{Options: Options{Release: release, Mirror: mirrorDir(t), PhaseTimeout: 2 * time.Minute, Reporter: &PlainReporter{W: &events}}, Config: cfg}
	if mut != nil {
		mut(&in.Options)
	}
	start := time.Now()
	_, err := in.Run(context.Background())
	d := time.Since(start)
	t.Logf("install %s took %s:\n%s", release, d.Round(time.Millisecond), events.String())
	return d, err
}

// liveObject is what a snapshot keeps of an object.
type liveObject struct {
	ResourceVersion string
	TmboxWrite      string // tmbox's managedFields entry, as JSON
	GenerateName    string
	Release         string
	Component       string
}

// snapshot lists every object labelled as tmbox's, except its own state.
func snapshot(t *testing.T, cfg *rest.Config) map[string]liveObject {
	t.Helper()
	cfg = rest.CopyConfig(cfg)
	cfg.WarningHandler = rest.NoWarnings{}
	dc := discovery.NewDiscoveryClientForConfigOrDie(cfg)
	dyn := dynamic.NewForConfigOrDie(cfg)
	lists, err := dc.ServerPreferredResources()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]liveObject{}
	for _, l := range lists {
		gv, _ := schema.ParseGroupVersion(l.GroupVersion)
		for _, r := range l.APIResources {
			if !slices.Contains(r.Verbs, "list") || strings.Contains(r.Name, "/") || r.Name == "events" {
				continue
			}
			items, err := dyn.Resource(gv.WithResource(r.Name)).List(context.Background(), metav1.ListOptions{LabelSelector: apply.LabelManagedBy + "=" + apply.ManagedByValue})
			if err != nil {
				if apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err) {
					continue
				}
				t.Fatalf("list %s: %v", r.Name, err)
			}
			for _, it := range items.Items {
				if it.GetNamespace() == StateNamespace || (r.Kind == "Namespace" && it.GetName() == StateNamespace) {
					continue
				}
				var w string
				for _, mf := range it.GetManagedFields() {
					if mf.Manager == apply.FieldManager {
						raw, _ := json.Marshal(mf)
						w += string(raw)
					}
				}
				key := fmt.Sprintf("%s/%s %s/%s", gv.Group, r.Kind, it.GetNamespace(), it.GetName())
				out[key] = liveObject{ResourceVersion: it.GetResourceVersion(), TmboxWrite: w, GenerateName: it.GetGenerateName(), Release: it.GetLabels()[apply.LabelRelease], Component: it.GetLabels()[apply.LabelComponent]}
			}
		}
	}
	return out
}

// shape is a snapshot without versions: objects by name, generateName
// objects counted by generateName.
func shape(s map[string]liveObject) []string {
	var out []string
	gen := map[string]int{}
	for k, o := range s {
		if o.GenerateName != "" {
			gen[o.GenerateName]++
			continue
		}
		out = append(out, k)
	}
	for g, n := range gen {
		out = append(out, fmt.Sprintf("%s* ×%d", g, n))
	}
	slices.Sort(out)
	return out
}

func deploymentsAvailable(t *testing.T, cs kubernetes.Interface, namespaces ...string) {
	t.Helper()
	for _, ns := range namespaces {
		list, err := cs.AppsV1().Deployments(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items) == 0 {
			t.Errorf("no Deployments in %s", ns)
		}
		for _, d := range list.Items {
			ok := false
			for _, c := range d.Status.Conditions {
				if c.Type == "Available" && c.Status == "True" {
					ok = true
				}
			}
			if !ok || d.Status.AvailableReplicas != *d.Spec.Replicas {
				t.Errorf("Deployment %s/%s not Available: %+v", ns, d.Name, d.Status)
			}
		}
	}
}

var stackNamespaces = []string{"istio-system", "knative-serving", "knative-eventing", "triggermesh"}

// TestIntegrationLifecycle installs 1.21 on the real test cluster, re-runs
// it (which must write nothing), interrupts installs with SIGKILL, and
// uninstalls.
func TestIntegrationLifecycle(t *testing.T) {
	c := suite.Cluster(t)
	cfg := c.Config
	cs := kubernetes.NewForConfigOrDie(cfg)

	rec := &recordingReporter{}
	first, err := install(t, cfg, "1.21", func(o *Options) { o.Reporter = teeReporter{o.Reporter, rec} })
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rec.sequence(), freshInstallSequence(); !slices.Equal(got, want) {
		t.Errorf("event sequence of a fresh install:\n got %v\nwant %v", got, want)
	}
	deploymentsAvailable(t, cs, stackNamespaces...)
	st, err := (&GetStatus{Config: cfg}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cat, _ := catalog.Load("")
	rel, _ := cat.Release("1.21")
	if !st.Healthy || st.Release != "1.21" || len(st.Components) != 6 {
		t.Fatalf("status after install: %+v", st)
	}
	if st.Ingress == nil || st.Ingress.Type != "LoadBalancer" || len(st.Ingress.Addresses) == 0 || !strings.HasPrefix(st.Ingress.Endpoint, "http://"+testcluster.LoadBalancerAddressPrefix) {
		t.Errorf("status ingress after install: %+v", st.Ingress)
	}
	for _, comp := range st.Components {
		pinned, _ := rel.Component(comp.Name)
		if !comp.Healthy || comp.Version != pinned.Version || comp.Workloads == 0 {
			t.Errorf("component %+v, want healthy at %s", comp, pinned.Version)
		}
	}
	clean := snapshot(t, cfg)
	if n := len(clean); n < 300 {
		t.Fatalf("only %d tmbox objects after install", n)
	}
	// Nothing was on the cluster: the post-install Jobs (storage-version
	// migration, clean-up) have nothing to do and do not run.
	for k, o := range clean {
		if o.GenerateName != "" && strings.HasPrefix(k, "batch/Job ") {
			t.Errorf("a first install created %s", k)
		}
	}

	t.Run("re-run changes nothing", func(t *testing.T) {
		again, err := install(t, cfg, "1.21", nil)
		if err != nil {
			t.Fatal(err)
		}
		after := snapshot(t, cfg)
		moved, byOthers := 0, 0
		for k, before := range clean {
			now, ok := after[k]
			if !ok {
				t.Errorf("%s disappeared", k)
				continue
			}
			if now.ResourceVersion != before.ResourceVersion {
				if now.TmboxWrite != before.TmboxWrite {
					moved++
					t.Errorf("re-run wrote %s (resourceVersion %s → %s)", k, before.ResourceVersion, now.ResourceVersion)
				} else {
					byOthers++ // a controller updated status; tmbox did not write
				}
			}
		}
		if len(after) != len(clean) {
			t.Errorf("re-run changed the object count: %d → %d", len(clean), len(after))
		}
		t.Logf("re-run: %s vs first install %s (%.0f%%); %d objects rewritten by tmbox, %d status updates by controllers",
			again.Round(time.Millisecond), first.Round(time.Millisecond), 100*again.Seconds()/first.Seconds(), moved, byOthers)
	})

	t.Run("SIGKILL at random moments, then re-run", func(t *testing.T) {
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		want := shape(clean)
		helper := func(delay time.Duration) (killed bool, took time.Duration) {
			if err := (&Uninstall{Config: cfg}).Run(context.Background()); err != nil {
				t.Fatalf("uninstall: %v", err)
			}
			cmd := exec.Command(exe)
			cmd.Env = append(os.Environ(), helperEnv+"="+c.Kubeconfig, "TMBOX_TEST_MIRROR="+mirrorDir(t))
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			start := time.Now()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			var timer <-chan time.Time
			if delay > 0 {
				timer = time.After(delay)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("install subprocess failed: %v\n%s", err, out.String())
				}
				return false, time.Since(start)
			case <-timer:
				_ = cmd.Process.Signal(syscall.SIGKILL)
				<-done
				return true, time.Since(start)
			}
		}
		// An install over kept CRDs is faster than the first one: measure
		// it, then kill at random moments inside it. The kept CRDs may
		// hold custom resources stored by an older release, so this
		// install runs the post-install Jobs: what a clean install has,
		// and one of each.
		_, full := helper(0)
		want = shape(snapshot(t, cfg))
		jobs := slices.DeleteFunc(slices.Clone(want), func(k string) bool { return slices.Contains(shape(clean), k) })
		if !slices.Equal(jobs, []string{"cleanup-serving-* ×1", "storage-version-migration-eventing-* ×1", "storage-version-migration-serving-* ×1"}) {
			t.Errorf("an install over kept CRDs added %v to a clean install's objects, want the three post-install Jobs", jobs)
		}
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
		kills := 0
		for attempt := 0; kills < 5 && attempt < 12; attempt++ {
			delay := time.Duration(float64(full) * (0.05 + 0.85*rng.Float64()))
			killed, _ := helper(delay)
			if !killed {
				t.Logf("attempt %d: the install finished before %s; trying another moment", attempt+1, delay.Round(time.Millisecond))
				continue
			}
			kills++
			st, err := (&stateStore{Client: cs}).Load(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			where := "before the state was written"
			if op := st.Current(); op != nil {
				where = "during " + lastPhase(op)
			}
			t.Logf("kill %d after %s of a %s install (%s)", kills, delay.Round(time.Millisecond), full.Round(time.Millisecond), where)
			if _, err := install(t, cfg, "1.21", nil); err != nil {
				t.Fatalf("re-run after kill %d: %v", kills, err)
			}
			got := shape(snapshot(t, cfg))
			if !slices.Equal(got, want) {
				t.Errorf("after kill %d the objects differ from a clean install:\n%s", kills, diffLines(want, got))
			}
			deploymentsAvailable(t, cs, stackNamespaces...)
		}
		if kills < 5 {
			t.Errorf("only %d of 5 kills landed inside an install", kills)
		}
	})

	t.Run("uninstall keeps CRDs, purge removes them", func(t *testing.T) {
		if err := (&Uninstall{Config: cfg}).Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		left := snapshot(t, cfg)
		for k := range left {
			if !strings.HasPrefix(k, "apiextensions.k8s.io/CustomResourceDefinition") {
				t.Errorf("left after uninstall: %s", k)
			}
		}
		if len(left) == 0 {
			t.Error("uninstall removed the CRDs without --purge")
		}
		// A custom resource of a cluster-scoped CRD (which no namespace
		// deletion lists, so its watch cache starts only now) goes with it.
		claims := dynamic.NewForConfigOrDie(cfg).Resource(schema.GroupVersionResource{Group: "networking.internal.knative.dev", Version: "v1alpha1", Resource: "clusterdomainclaims"})
		claim := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "networking.internal.knative.dev/v1alpha1", "kind": "ClusterDomainClaim",
			"metadata": map[string]any{"name": "hello.example.com"}, "spec": map[string]any{"namespace": "default"},
		}}
		if _, err := claims.Create(context.Background(), claim, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		var events bytes.Buffer
		if err := (&Uninstall{Config: cfg, Purge: true, Reporter: &PlainReporter{W: &events}}).Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(events.String(), "CRDs deleted, with their 1 custom resources") {
			t.Errorf("purge did not count the custom resource:\n%s", events.String())
		}
		if _, err := claims.Get(context.Background(), claim.GetName(), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("the ClusterDomainClaim is still there after --purge (err %v)", err)
		}
		if left := shape(snapshot(t, cfg)); len(left) != 0 {
			t.Errorf("%d objects left after --purge, e.g. %v", len(left), left[:min(5, len(left))])
		}
	})
}

func diffLines(want, got []string) string {
	var b strings.Builder
	for _, w := range want {
		if !slices.Contains(got, w) {
			b.WriteString("  missing " + w + "\n")
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			b.WriteString("  extra   " + g + "\n")
		}
	}
	return b.String()
}

// TestIntegrationRefusedBeforeWrites: bad options never touch the cluster.
func TestIntegrationRefusedBeforeWrites(t *testing.T) {
	c := suite.Cluster(t)
	bad := filepath.Join(t.TempDir(), "overlay.yaml")
	if err := os.WriteFile(bad, []byte("apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nspec: [not, a, map\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	notIOP := filepath.Join(t.TempDir(), "deploy.yaml")
	if err := os.WriteFile(notIOP, []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		release string
		mut     func(*Options)
		want    string
	}{
		{"malformed overlay", "1.23", func(o *Options) { o.IstioOverlay = bad }, "istio overlay"},
		{"overlay of the wrong kind", "1.23", func(o *Options) { o.IstioOverlay = notIOP }, "want an IstioOperator"},
		{"unknown component", "1.21", func(o *Options) { o.Components = []string{"istio", "kafka"} }, `unknown component "kafka"`},
		{"unknown phase", "1.21", func(o *Options) { o.SkipPhases = []string{"istio", "coffee"} }, `unknown phase "coffee"`},
		{"unknown release", "1.99", nil, "known releases"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := snapshot(t, c.Config)
			_, err := install(t, c.Config, tt.release, tt.mut)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			if after := snapshot(t, c.Config); len(after) != len(before) {
				t.Errorf("a refused install wrote objects: %d → %d", len(before), len(after))
			}
			cs := kubernetes.NewForConfigOrDie(c.Config)
			if _, err := cs.CoreV1().Namespaces().Get(context.Background(), StateNamespace, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("a refused install created %s: %v", StateNamespace, err)
			}
		})
	}
}

// TestIntegrationUnschedulable installs on nodes too small for Knative.
// First the capacity check refuses, naming needed and available CPU, with
// no write to the cluster; then, with that check ignored, the install
// fails within its budget and names the Deployment and the scheduler's
// reason.
func TestIntegrationUnschedulable(t *testing.T) {
	shared := suite.Cluster(t)
	c := testcluster.StartT(t, testcluster.Options{Nodes: 1, NodeCPU: "1", NodeMemory: "4Gi", BinDir: shared.BinDir, SharedWebhookStandIn: shared.WebhookStandIn})
	budget := 20 * time.Second
	comps := []string{catalog.Istio, catalog.KnativeServing, catalog.NetIstio}

	before := settledVersions(t, c.Config)
	_, err := install(t, c.Config, "1.21", func(o *Options) { o.Components = comps })
	var pf *preflight.FailedError
	if !errors.As(err, &pf) || len(pf.Failed) != 1 || pf.Failed[0].Name != preflight.CheckCapacity {
		t.Fatalf("error %v, want the capacity check alone to fail", err)
	}
	if !strings.Contains(err.Error(), "CPU: needed ") || !strings.Contains(err.Error(), "available 1 CPU") {
		t.Errorf("the capacity failure lacks needed vs available: %v", err)
	}
	after := allVersions(t, c.Config)
	for k, rv := range after {
		if before[k] != rv {
			t.Errorf("a refused install wrote %s (resourceVersion %q → %q)", k, before[k], rv)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			t.Errorf("a refused install deleted %s", k)
		}
	}
	t.Logf("%d objects unchanged", len(before))

	d, err := install(t, c.Config, "1.21", func(o *Options) {
		o.Components = comps
		o.PhaseTimeout = budget
		o.IgnorePreflightErrors = []string{preflight.CheckCapacity}
	})
	if err == nil {
		t.Fatal("install on a 1-CPU node succeeded")
	}
	t.Logf("error: %v", err)
	for _, want := range []string{"Deployment ", "Unschedulable", "Insufficient cpu", "not ready after 20s"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q", want)
		}
	}
	if d > 3*budget {
		t.Errorf("took %s for a %s budget per phase", d, budget)
	}
}

// allVersions maps every object of the cluster to its resourceVersion.
func allVersions(t *testing.T, cfg *rest.Config) map[string]string {
	t.Helper()
	return testcluster.Objects(t, cfg, func(u *unstructured.Unstructured) string { return u.GetResourceVersion() })
}

// settledVersions waits until the cluster's objects stop changing (a
// fresh cluster's controllers are still creating service accounts and
// certificates) and returns them.
func settledVersions(t *testing.T, cfg *rest.Config) map[string]string {
	t.Helper()
	prev := allVersions(t, cfg)
	for range 30 {
		time.Sleep(time.Second)
		cur := allVersions(t, cfg)
		if maps.Equal(prev, cur) {
			return cur
		}
		prev = cur
	}
	t.Fatal("the cluster did not settle in 30s")
	return nil
}

// freshInstallSequence is the (type, phase) sequence a fresh install on an
// existing cluster reports, consecutive repeats folded and the timing-
// dependent waiting/progress lines left out: the same sequence as before
// preflight and cluster became phases of the runner.
func freshInstallSequence() []string {
	seq := []string{"info/", "phase-start/preflight", "check/preflight", "phase-done/preflight", "phase-start/cluster", "phase-done/cluster"}
	for _, p := range []string{PhaseImages, PhaseIstio, PhaseKnativeServing, PhaseKnativeEventing, PhaseTriggerMesh} {
		seq = append(seq, "phase-start/"+p, "phase-done/"+p)
	}
	// No add-ons declared: the phase is skipped, and says so.
	return append(seq, "phase-skip/"+PhaseAddons, "phase-start/"+PhaseVerify, "phase-done/"+PhaseVerify)
}

// recordingReporter keeps every event.
type recordingReporter struct {
	mu     sync.Mutex
	events []Event
}

func (r *recordingReporter) Report(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// sequence is the events' type/phase pairs, consecutive repeats folded,
// waiting and progress lines left out.
func (r *recordingReporter) sequence() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		if e.Type == EventWaiting || e.Type == EventProgress {
			continue
		}
		s := e.Type + "/" + e.Phase
		if len(out) == 0 || out[len(out)-1] != s {
			out = append(out, s)
		}
	}
	return out
}

// teeReporter reports to both.
type teeReporter struct{ a, b Reporter }

func (t teeReporter) Report(e Event) { t.a.Report(e); t.b.Report(e) }
