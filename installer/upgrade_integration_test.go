package installer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"errors"
	"slices"

	"os/exec"
	"syscall"

	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer/apply"
	"github.com/tmbox/tmbox/internal/testcluster"
	corev1 "k8s.io/api/core/v1"
)

func upgrade(t *testing.T, cfg *rest.Config, to string, mut func(*Upgrade)) error {
	t.Helper()
	var events bytes.Buffer
	u := &Upgrade{Options: Options{Release: to, Mirror: mirrorDir(t), PhaseTimeout: 2 * time.Minute, Reporter: &PlainReporter{W: &events}}, Config: cfg}
	if mut != nil {
		mut(u)
	}
	start := time.Now()
	err := u.Run(context.Background())
	t.Logf("upgrade to %s took %s (err %v):\n%s", to, time.Since(start).Round(time.Millisecond), err, events.String())
	return err
}

// jobWatch counts the Jobs tmbox creates, per operation and generateName.
type jobWatch struct {
	mu      sync.Mutex
	created map[string]int
	stop    func()
}

func watchJobs(t *testing.T, cs kubernetes.Interface) *jobWatch {
	w, err := cs.BatchV1().Jobs("").Watch(context.Background(), metav1.ListOptions{LabelSelector: apply.LabelManagedBy + "=" + apply.ManagedByValue})
	if err != nil {
		t.Fatal(err)
	}
	jw := &jobWatch{created: map[string]int{}, stop: w.Stop}
	go func() {
		for ev := range w.ResultChan() {
			if ev.Type != watch.Added {
				continue
			}
			m, _ := ev.Object.(metav1.Object)
			jw.mu.Lock()
			jw.created[m.GetLabels()[apply.LabelOperation]+" "+m.GetNamespace()+"/"+m.GetGenerateName()]++
			jw.mu.Unlock()
		}
	}()
	return jw
}

// workloadImages returns every Deployment/DaemonSet/StatefulSet image in
// the stack's namespaces.
func workloadImages(t *testing.T, cs kubernetes.Interface) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, ns := range stackNamespaces {
		ds, err := cs.AppsV1().Deployments(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds.Items {
			for _, c := range append(d.Spec.Template.Spec.InitContainers, d.Spec.Template.Spec.Containers...) {
				out[ns+"/"+d.Name] = append(out[ns+"/"+d.Name], c.Image)
			}
		}
	}
	return out
}

func checkAtRelease(t *testing.T, cfg *rest.Config, release string) {
	t.Helper()
	cs := kubernetes.NewForConfigOrDie(cfg)
	cat, _ := catalog.Load("")
	rel, _ := cat.Release(release)
	pinned := map[string]bool{}
	for _, img := range rel.Images() {
		pinned[img] = true
	}
	for w, imgs := range workloadImages(t, cs) {
		for _, img := range imgs {
			if !pinned[img] {
				t.Errorf("%s runs %s, not a %s pin", w, img, release)
			}
		}
	}
	deploymentsAvailable(t, cs, stackNamespaces...)
	st, err := (&GetStatus{Config: cfg}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !st.Healthy || st.Release != release {
		t.Errorf("status: release %s healthy %v, want healthy at %s: %+v", st.Release, st.Healthy, release, st.Components)
	}
	for k, o := range snapshot(t, cfg) {
		// A CRD only a newer release had stays after a downgrade: CRDs
		// are never pruned, since deleting one deletes its resources.
		if strings.Contains(k, "CustomResourceDefinition") && o.Release > release {
			continue
		}
		if o.Release == release {
			continue
		}
		// An object a hop leaves as it was keeps the release it was
		// last written for: only where both releases render it the same.
		// Neither renders the objects of the settings (a registry's
		// credentials, the gateway's certificate), nor the copies of a
		// Service's labels its endpoints controller makes.
		then, now := renderedHashes(t, o.Release)[k], renderedHashes(t, release)[k]
		if then == "" && now == "" {
			continue
		}
		if then != now {
			t.Errorf("%s (%s) is labelled release %q, want %s: the two releases render it differently", k, o.Component, o.Release, release)
		}
	}
}

// renderedHashes maps every object of a release of the embedded catalog,
// rendered from the upstream files with no settings, to its applied hash
// (keys as snapshot's); each release is rendered once per test binary.
func renderedHashes(t *testing.T, release string) map[string]string {
	t.Helper()
	renderedMu.Lock()
	defer renderedMu.Unlock()
	if h, ok := rendered[release]; ok {
		return h
	}
	cat, err := catalog.Load("")
	if err != nil {
		t.Fatal(err)
	}
	rel, err := cat.Release(release)
	if err != nil {
		t.Fatalf("release %q: %v", release, err)
	}
	d, err := objectsFor(context.Background(), catalog.Mirror{Dir: mirrorDir(t)}, rel, catalog.ComponentNames(), renderInputs{})
	if err != nil {
		t.Fatal(err)
	}
	h := map[string]string{}
	for _, objs := range d.byComponent {
		for _, o := range objs {
			k := apply.KeyOf(o.Unstructured)
			h[fmt.Sprintf("%s/%s %s/%s", k.Group, k.Kind, k.Namespace, k.Name)] = o.GetAnnotations()[apply.AnnotationHash]
		}
	}
	rendered[release] = h
	return h
}

var (
	renderedMu sync.Mutex
	rendered   = map[string]map[string]string{}
)

// brokenCatalog writes a catalog whose 1.23 adds, to net-istio, a Deployment
// that can never be scheduled, and a mirror holding it beside the real files.
func brokenCatalog(t *testing.T) (catFile, mirror string) {
	t.Helper()
	return catalogWithAsset(t, catalog.NetIstio, "1.23.0", "example.com/never-ready:1", []byte(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: never-ready
  namespace: knative-serving
spec:
  selector: {matchLabels: {app: never-ready}}
  template:
    metadata: {labels: {app: never-ready}}
    spec:
      nodeSelector: {tmbox.dev/no-such-node: "true"}
      containers:
      - name: c
        image: example.com/never-ready:1
`))
}

// catalogWithAsset writes a catalog whose component comp at version gets
// one more asset, doc (running image), and a mirror holding it beside the
// real files.
func catalogWithAsset(t *testing.T, comp, version, image string, doc []byte) (catFile, mirror string) {
	t.Helper()
	dir := t.TempDir()
	mirror = filepath.Join(dir, "mirror")
	if err := os.MkdirAll(filepath.Join(mirror, "extra"), 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(mirrorDir(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.Symlink(filepath.Join(mirrorDir(t), e.Name()), filepath.Join(mirror, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(mirror, "extra", "extra.yaml"), doc, 0o644); err != nil {
		t.Fatal(err)
	}
	var cat map[string]any
	if err := yaml.Unmarshal(catalog.EmbeddedCatalog(), &cat); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(doc)
	found := false
	for _, c := range cat["components"].([]any) {
		m := c.(map[string]any)
		if m["name"] == comp && m["version"] == version {
			m["assets"] = append(m["assets"].([]any), map[string]any{
				"name": "extra.yaml", "path": "extra/extra.yaml", "url": "https://example.com/extra.yaml",
				"size": len(doc), "sha256": hex.EncodeToString(sum[:]),
			})
			m["images"] = append(m["images"].([]any), image)
			found = true
		}
	}
	if !found {
		t.Fatalf("%s %s not in the catalog", comp, version)
	}
	data, err := yaml.Marshal(cat)
	if err != nil {
		t.Fatal(err)
	}
	catFile = filepath.Join(dir, "catalog.yaml")
	if err := os.WriteFile(catFile, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return catFile, mirror
}

// narrowCatalog writes a catalog whose 1.23 needs Kubernetes ≥1.35, so the
// test cluster's v1.34 is outside the second hop's range.
func narrowCatalog(t *testing.T) string {
	t.Helper()
	data := bytes.Replace(catalog.EmbeddedCatalog(), []byte(`kubernetes: ">= 1.32, < 1.37"`), []byte(`kubernetes: ">= 1.35, < 1.37"`), 1)
	if bytes.Equal(data, catalog.EmbeddedCatalog()) {
		t.Fatal("could not narrow Istio 1.30's Kubernetes range")
	}
	f := filepath.Join(t.TempDir(), "catalog.yaml")
	if err := os.WriteFile(f, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestIntegrationUpgrade walks 1.21 → 1.23 on the real test cluster, then
// refusals, a downgrade, and a failing hop that is rolled back.
func TestIntegrationUpgrade(t *testing.T) {
	c := suite.Cluster(t)
	cfg := c.Config
	cs := kubernetes.NewForConfigOrDie(cfg)
	if _, err := install(t, cfg, "1.21", nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = (&Uninstall{Config: cfg, Purge: true}).Run(context.Background()) })

	t.Run("live plan lists both hops and writes nothing", func(t *testing.T) {
		before := snapshot(t, cfg)
		u := &Upgrade{Options: Options{Release: "1.23", Mirror: mirrorDir(t)}, Config: cfg}
		plan, err := u.Plan(context.Background(), true)
		if err != nil {
			t.Fatal(err)
		}
		if len(plan.Hops) != 2 || len(plan.Changes) != 2 {
			t.Fatalf("plan %+v", plan)
		}
		for i, diffs := range plan.Changes {
			total := 0
			for _, d := range diffs {
				total += d.Add + d.Change + d.Prune
				t.Logf("hop %d: %s", i+1, d)
			}
			if total == 0 {
				t.Errorf("hop %d changes nothing", i+1)
			}
		}
		assertNoTmboxWrites(t, before, snapshot(t, cfg))
	})

	t.Run("Kubernetes outside a hop's range: refused, nothing written", func(t *testing.T) {
		before := snapshot(t, cfg)
		err := upgrade(t, cfg, "1.23", func(u *Upgrade) { u.CatalogFile = narrowCatalog(t) })
		if err == nil || !strings.Contains(err.Error(), "1.22→1.23") || !strings.Contains(err.Error(), "needs Kubernetes >=1.35") {
			t.Fatalf("want the second hop refused with the remedy, got %v", err)
		}
		assertNoTmboxWrites(t, before, snapshot(t, cfg))
	})

	t.Run("1.21 to 1.23 in two hops", func(t *testing.T) {
		before := snapshot(t, cfg)
		jobs := watchJobs(t, cs)
		if err := upgrade(t, cfg, "1.23", nil); err != nil {
			t.Fatal(err)
		}
		jobs.stop()
		checkAtRelease(t, cfg, "1.23")
		// Both hops keep TriggerMesh's version: none of its objects is
		// written (they keep release 1.21's label); Serving's are.
		after := snapshot(t, cfg)
		tm := map[string]liveObject{}
		wroteServing := 0
		for k, o := range before {
			switch o.Component {
			case catalog.TriggerMesh, catalog.TriggerMeshCore:
				tm[k] = after[k]
			case catalog.KnativeServing:
				if after[k].TmboxWrite != o.TmboxWrite {
					wroteServing++
				}
			}
		}
		if len(tm) == 0 || wroteServing == 0 {
			t.Fatalf("snapshot: %d TriggerMesh objects, %d of Serving's written", len(tm), wroteServing)
		}
		for k, o := range tm {
			if o.Release != "1.21" {
				t.Errorf("%s is labelled release %q, want 1.21 (unchanged since)", k, o.Release)
			}
			if o.ResourceVersion != before[k].ResourceVersion && o.TmboxWrite != before[k].TmboxWrite {
				t.Errorf("the upgrade wrote %s, which no hop changes", k)
			}
		}
		jobs.mu.Lock()
		defer jobs.mu.Unlock()
		for _, op := range []string{"upgrade-1.21-1.22", "upgrade-1.22-1.23"} {
			n := 0
			for k, count := range jobs.created {
				if strings.HasPrefix(k, op+" ") {
					n++
					if count != 1 {
						t.Errorf("%s created %d times", k, count)
					}
				}
			}
			if n != 3 { // serving: migration + cleanup; eventing: migration
				t.Errorf("%s created %d post-install Jobs, want 3: %v", op, n, jobs.created)
			}
		}
	})

	t.Run("downgrade to 1.22", func(t *testing.T) {
		if err := upgrade(t, cfg, "1.22", nil); err == nil || !strings.Contains(err.Error(), "--allow-downgrade") {
			t.Fatalf("a downgrade without --allow-downgrade: %v", err)
		}
		if err := upgrade(t, cfg, "1.22", func(u *Upgrade) { u.AllowDowngrade = true }); err != nil {
			t.Fatal(err)
		}
		checkAtRelease(t, cfg, "1.22")
	})

	t.Run("failing hop is rolled back", func(t *testing.T) {
		catFile, mirror := brokenCatalog(t)
		err := upgrade(t, cfg, "1.23", func(u *Upgrade) {
			u.CatalogFile, u.Mirror, u.PhaseTimeout = catFile, mirror, 15*time.Second
		})
		if err == nil || !strings.Contains(err.Error(), "never-ready") || !strings.Contains(err.Error(), "rolled back to 1.22") {
			t.Fatalf("want the hop to fail on never-ready and roll back, got %v", err)
		}
		checkAtRelease(t, cfg, "1.22")
		st, err := (&stateStore{Client: cs}).Load(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		last := st.Journal[len(st.Journal)-1]
		if last.ID != "upgrade-1.22-1.23" || last.Result != ResultRolledBack || !strings.Contains(last.Error, "never-ready") {
			t.Errorf("journal's last operation: %+v", last)
		}
		if _, err := cs.AppsV1().Deployments("knative-serving").Get(context.Background(), "never-ready", metav1.GetOptions{}); err == nil {
			t.Error("the rollback left the failed release's Deployment behind")
		}
	})
}

// assertNoTmboxWrites fails for any object tmbox wrote between two
// snapshots, or that appeared or disappeared. Controllers' status updates
// move resourceVersions too; they leave tmbox's managedFields entry alone.
func assertNoTmboxWrites(t *testing.T, before, after map[string]liveObject) {
	t.Helper()
	if len(after) != len(before) {
		t.Errorf("object count changed: %d → %d", len(before), len(after))
	}
	for k, o := range before {
		now, ok := after[k]
		if !ok {
			t.Errorf("%s disappeared", k)
		} else if now.TmboxWrite != o.TmboxWrite {
			t.Errorf("tmbox wrote %s (resourceVersion %s → %s)", k, o.ResourceVersion, now.ResourceVersion)
		}
	}
}

// TestIntegrationRollbackOnlyTouched: a hop that fails in Istio (the node
// tainted, a 20 s budget) rolls back Istio alone: no Knative Job is created
// during the rollback, and once the taint is gone every component is
// healthy at the start release without re-running the upgrade.
func TestIntegrationRollbackOnlyTouched(t *testing.T) {
	shared := suite.Cluster(t)
	c := testcluster.StartT(t, testcluster.Options{Nodes: 1, BinDir: shared.BinDir, SharedWebhookStandIn: shared.WebhookStandIn})
	cfg := c.Config
	cs := kubernetes.NewForConfigOrDie(cfg)
	if _, err := install(t, cfg, "1.22", nil); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	taint := corev1.Taint{Key: "tmbox.dev/test-no-schedule", Effect: corev1.TaintEffectNoSchedule}
	setTaint := func(on bool) {
		t.Helper()
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes.Items {
			n.Spec.Taints = slices.DeleteFunc(n.Spec.Taints, func(x corev1.Taint) bool { return x.Key == taint.Key })
			if on {
				n.Spec.Taints = append(n.Spec.Taints, taint)
			}
			if _, err := cs.CoreV1().Nodes().Update(ctx, &n, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	setTaint(true)
	jobs := watchJobs(t, cs)
	defer jobs.stop()
	err := upgrade(t, cfg, "1.23", func(u *Upgrade) { u.PhaseTimeout = 20 * time.Second })
	var rb *RolledBackError
	if !errors.As(err, &rb) || rb.To != "1.22" {
		t.Fatalf("upgrade: %v, want a hop rolled back to 1.22", err)
	}
	if !strings.Contains(err.Error(), "istio") {
		t.Errorf("error %q does not say the hop failed in istio", err)
	}
	jobs.mu.Lock()
	for k, n := range jobs.created {
		if strings.Contains(k, "-rollback ") {
			t.Errorf("the rollback created %d Job(s) %s", n, k)
		}
	}
	jobs.mu.Unlock()
	setTaint(false)
	checkAtRelease(t, cfg, "1.22")
	st, err := (&GetStatus{Config: cfg}).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, comp := range st.Components {
		if comp.Release != "1.22" || !comp.Healthy {
			t.Errorf("component %s at %s healthy %v, want healthy at 1.22", comp.Name, comp.Release, comp.Healthy)
		}
	}
}

// TestIntegrationOneWriter: an install runs in another process; an
// upgrade started 2 s later is refused at once naming it, writes nothing,
// and with a wait runs once the install is done. An install killed with
// SIGKILL leaves its Lease, which the next install takes over.
func TestIntegrationOneWriter(t *testing.T) {
	shared := suite.Cluster(t)
	c := testcluster.StartT(t, testcluster.Options{Nodes: 1, BinDir: shared.BinDir, SharedWebhookStandIn: shared.WebhookStandIn})
	cfg := c.Config
	cs := kubernetes.NewForConfigOrDie(cfg)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	startInstall := func() (*exec.Cmd, chan error) {
		t.Helper()
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), helperEnv+"="+c.Kubeconfig, "TMBOX_TEST_MIRROR="+mirrorDir(t))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		return cmd, done
	}
	ctx := context.Background()

	// Killed: its Lease stays, and the next install takes it over.
	cmd, done := startInstall()
	time.Sleep(3 * time.Second)
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
	if h, err := readLock(ctx, cs); err != nil || h == nil || h.PID != cmd.Process.Pid {
		t.Fatalf("after SIGKILL the Lease holder is %+v (%v), want pid %d", h, err, cmd.Process.Pid)
	}
	if _, err := install(t, cfg, "1.21", nil); err != nil {
		t.Fatalf("install after a killed one: %v", err)
	}
	if h, _ := readLock(ctx, cs); h != nil {
		t.Errorf("lock still held after the install: %+v", h)
	}

	// Two writers: the second is refused at once, then waits.
	if err := (&Uninstall{Config: cfg}).Run(ctx); err != nil {
		t.Fatal(err)
	}
	cmd, done = startInstall()
	time.Sleep(2 * time.Second)
	select {
	case err := <-done:
		t.Fatalf("the install finished within 2 s (%v): nothing to collide with", err)
	default:
	}
	jobs := watchJobs(t, cs)
	start := time.Now()
	err = upgrade(t, cfg, "1.22", nil)
	var le *LockedError
	if !errors.As(err, &le) || le.Holder.PID != cmd.Process.Pid || !strings.Contains(err.Error(), "install 1.21") {
		t.Fatalf("upgrade during an install: %v, want it refused naming the install (pid %d)", err, cmd.Process.Pid)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the refusal took %s", d)
	}
	// The install writes meanwhile: what the upgrade would have written
	// carries its operation (journal entry, Jobs).
	if st, err := (&stateStore{Client: cs}).Load(ctx); err == nil {
		for _, op := range st.Journal {
			if op.Kind == "upgrade" {
				t.Errorf("the refused upgrade is in the journal: %+v", op)
			}
		}
	}
	jobs.mu.Lock()
	for k := range jobs.created {
		if strings.HasPrefix(k, "upgrade-") {
			t.Errorf("the refused upgrade created Job %s", k)
		}
	}
	jobs.mu.Unlock()
	jobs.stop()
	if err := upgrade(t, cfg, "1.22", func(u *Upgrade) { u.WaitForLock = 5 * time.Minute }); err != nil {
		t.Fatalf("upgrade with --wait-for-lock: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the install the upgrade waited for failed: %v", err)
	}
	checkAtRelease(t, cfg, "1.22")
}
